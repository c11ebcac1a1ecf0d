"""Real English text and a cheap encoder for retrieval tests and bench/retrieval.py.

Text comes from the Python standard library's own docstrings (fixed for a given Python version).
Embedding thousands of passages with MiniLM takes minutes on two shared cores, so index-level checks use
:class:`StaticMiniLMEncoder`: the mean of MiniLM's *input* token embeddings, which has the real
vocabulary's geometry at a tiny cost.
"""

import importlib
import inspect
import random
import re

import numpy as np

from retrieval.engine.encoder import bundled_model_path, model_fingerprint

MODULES = (
    "argparse asyncio base64 bisect calendar collections concurrent.futures configparser contextlib copy csv "
    "dataclasses datetime decimal difflib email enum fractions ftplib functools gettext glob gzip hashlib heapq "
    "hmac http.client imaplib inspect io ipaddress itertools json locale logging lzma mailbox math mimetypes "
    "multiprocessing operator os pathlib pickle platform poplib pprint queue random re sched secrets selectors "
    "shutil signal smtplib socket sqlite3 ssl statistics string struct subprocess tarfile tempfile textwrap "
    "threading time tomllib traceback typing unittest urllib.request uuid warnings weakref xml.etree.ElementTree "
    "zipfile zlib"
).split()


def docstring_paragraphs():
    """Unique docstring paragraphs of at least 60 characters, whitespace collapsed, in a fixed order."""
    seen = set()
    for name in MODULES:
        module = importlib.import_module(name)
        for attribute, value in sorted(vars(module).items()):
            if attribute.startswith("_"):
                continue
            members = [value]
            if inspect.isclass(value):
                members += [v for k, v in sorted(vars(value).items()) if not k.startswith("_")]
            for member in members:
                try:
                    doc = inspect.getdoc(member)
                except Exception:  # noqa: BLE001 - some objects' __doc__ raise
                    doc = None
                for paragraph in (doc or "").split("\n\n"):
                    text = " ".join(paragraph.split())
                    if len(text) >= 60 and text not in seen:
                        seen.add(text)
                        yield text


def passages(count, seed=0):
    """``count`` (id, text) pairs: real paragraphs first, then mixes of three of their sentences."""
    paragraphs = list(docstring_paragraphs())
    texts = paragraphs[:count]
    sentences = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s) > 20]
    rng = random.Random(seed)
    while len(texts) < count:
        texts.append(" ".join(rng.sample(sentences, 3)))
    return [(f"doc-{number:06d}", text) for number, text in enumerate(texts)]


class StaticMiniLMEncoder:
    def __init__(self):
        from safetensors import safe_open
        from tokenizers import Tokenizer

        path = bundled_model_path()
        with safe_open(str(path / "model.safetensors"), "np") as weights:
            self.table = weights.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.identity = {
            "model": "mean of MiniLM input embeddings (tests)",
            "fingerprint": "static-" + model_fingerprint(path),
            "dimension": int(self.table.shape[1]),
        }

    def encode(self, texts):
        vectors = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            if encoding.ids:
                vectors[row] = self.table[encoding.ids].mean(axis=0)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)
