"""Verbatim spans of causal answers: the span index built beside a causal model version's attribution index
(`span_index_store`, from the build job), re-hashed with it (`span_index_verify`), and the spans a receipt
lists (`with_verbatim_spans`): each part of the answer that repeats a training row word for word, with the
rows holding it and their contributors' public names.

The span index is the engine's (`attribution.engine.verbatim`): a suffix array over the version's rows,
encoded by training's own `encode_rows`, stored under `<index prefix>/verbatim/` and pinned by the span
hash that the index row records in `method["verbatim"]`. Spans name rows and contributors; they pay nothing
(`SPAN_ROYALTY_BPS` = 0, recorded in each receipt): the fee is split by the gradient shares alone.
Classification versions, and indexes built before spans existed, have no span index, and their receipts
have no `verbatim_spans` key, so recomputing an older receipt gives the digest it was stored with.
numpy and the engine module load on first use, in the worker or serving process that needs them.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from accounts import selectors as accounts_selectors
from lineage.stored_files import file_stamps

from .errors import BuildError, IndexCorrupt

SPANS_DIR = "verbatim"  # under the attribution index's storage prefix
CAUSAL_TASKS = ("instruction", "text")
_MANIFEST = "verbatim.json"  # attribution.engine.verbatim.MANIFEST_NAME, named here so web imports stay numpy-free

_cache: dict[str, tuple[object, dict]] = {}  # model version hash -> (opened SpanIndex, file stamps)
_cache_lock = threading.Lock()


def span_index_store(*, index, content: dict, tokenizer, row_ids: list[str], contributor_ids: list[str],
                     fields: list[dict], work: Path) -> dict | None:
    """Build the span index of a causal version's training rows (in index order), verify it and store its
    files; the summary (span hash and sizes) is what the index row records. None for other tasks."""
    if content["task"] not in CAUSAL_TASKS:
        return None
    from models_registry.training import encode_rows

    from ..engine.verbatim import build_span_index

    encoded = encode_rows(tokenizer, content["task"], fields, content.get("label_names") or [],
                          int(content["hyperparameters"]["max_seq_length"]))
    local = work / SPANS_DIR
    try:
        span_index = build_span_index(
            ((row_id, contributor, example.input_ids)
             for row_id, contributor, example in zip(row_ids, contributor_ids, encoded, strict=True)),
            local, vocab_size=len(tokenizer), model_hash=index.model_version_hash)
    except ValueError as exc:
        raise BuildError(f"The verbatim span index cannot be built from this model's rows: {exc}") from exc
    report = span_index.verify()
    if not report.ok:
        raise BuildError(f"The freshly built span index does not verify: {'; '.join(report.problems)}")
    prefix = f"{index.storage_prefix}/{SPANS_DIR}"
    for name in [*span_index.file_names, _MANIFEST]:  # the manifest last: a reader never sees it before its files
        target = f"{prefix}/{name}"
        if default_storage.exists(target):
            default_storage.delete(target)
        with open(local / name, "rb") as fh:
            stored = default_storage.save(target, File(fh))
        if stored != target:
            raise BuildError(f"Storage saved {target} as {stored}; another build is writing the same index.")
    return {"span_hash": span_index.span_hash, "rows": span_index.num_rows,
            "tokens": int(span_index.manifest["num_tokens"]), "files": list(span_index.file_names)}


def _summary(index) -> dict | None:
    return (index.method or {}).get("verbatim")


def _local_dir(index, summary: dict) -> Path:
    """The span index directory on this machine: the storage path itself, or a download once."""
    prefix = f"{index.storage_prefix}/{SPANS_DIR}"
    try:
        return Path(default_storage.path(f"{prefix}/{_MANIFEST}")).parent
    except NotImplementedError:
        pass
    target = Path(settings.ATTRIBUTION_CACHE_DIR) / f"verbatim-{summary['span_hash']}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        for name in [*summary["files"], _MANIFEST]:
            with default_storage.open(f"{prefix}/{name}", "rb") as src, open(target / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        (target / ".complete").touch()
    return target


def _opened(index, *, reverify: bool = False):
    """The version's span index, verified file by file against the hash its index row recorded (then
    trusted while the files' sizes and mtimes are unchanged); None when it has none. `IndexCorrupt` when
    the files cannot be read or differ."""
    summary = _summary(index)
    if not summary:
        return None
    key = index.model_version_hash
    with _cache_lock:
        cached = _cache.pop(key, None)
    if cached is not None and not reverify and cached[0].span_hash == summary["span_hash"]:
        try:
            unchanged = file_stamps(cached[0].directory) == cached[1]
        except OSError:
            unchanged = False
        if unchanged:
            with _cache_lock:
                _cache[key] = cached
            return cached[0]
    from ..engine.verbatim import SpanIndex

    where = f"The verbatim span index of model {key[:12]}"
    try:
        directory = _local_dir(index, summary)
        span_index = SpanIndex(directory)
        report = span_index.verify(expected_hash=summary["span_hash"])
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(f"{where} cannot be read: {exc}. No receipt is computed from it; rebuild the index.") from exc
    if not report.ok:
        raise IndexCorrupt(f"{where} failed verification ({'; '.join(report.problems)}). No receipt is computed "
                           "from it; rebuild the index.")
    with _cache_lock:
        _cache[key] = (span_index, file_stamps(directory))
        while len(_cache) > max(1, settings.ATTRIBUTION_CACHE_MODELS):
            _cache.pop(next(iter(_cache)))
    return span_index


def span_index_verify(*, index) -> None:
    """Re-hash the stored span index (if the version has one); `IndexCorrupt` with the reason otherwise."""
    _opened(index, reverify=True)


def _token_offsets(tokenizer, output: str) -> tuple[list[int], list[tuple[int, int]]]:
    try:
        encoded = tokenizer(output, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), [tuple(pair) for pair in encoded["offset_mapping"]]
    except NotImplementedError:  # a slow tokenizer has no offsets: each token's characters from decoded prefixes
        ids = list(tokenizer(output, add_special_tokens=False)["input_ids"])
        ends = [len(tokenizer.decode(ids[: i + 1])) for i in range(len(ids))]
        return ids, list(zip([0, *ends[:-1]], ends))


def with_verbatim_spans(payload: dict, *, index, tokenizer, output: str, reverify: bool = False) -> dict:
    """`payload` plus `verbatim_spans` (answer characters, text, rows and contributors of every maximal span
    of at least ATTRIBUTION_VERBATIM_MIN_TOKENS tokens repeated from one training row) and `verbatim` (how
    they were found), when the version has a span index; `payload` unchanged otherwise."""
    span_index = _opened(index, reverify=reverify)
    if span_index is None:
        return payload
    from ..engine.verbatim import SPAN_ROYALTY_BPS, char_span

    min_tokens, max_rows = settings.ATTRIBUTION_VERBATIM_MIN_TOKENS, settings.ATTRIBUTION_VERBATIM_MAX_ROWS
    ids, offsets = _token_offsets(tokenizer, output)
    spans = span_index.find_spans(ids, min_tokens=min_tokens, max_rows=max_rows)
    names = accounts_selectors.users_public_names(
        user_ids={row.contributor_id for span in spans for row in span.rows})
    listed = []
    for span in spans:
        start, end = char_span(offsets, output, span)
        listed.append({
            "start": start, "end": end, "text": output[start:end], "tokens": span.length,
            "occurrences": span.occurrences, "row_count": span.row_count,
            "rows": [{"row_id": row.row_id, "contributor_id": row.contributor_id, "row_token_start": row.token_start,
                      "contributor_name": names.get(int(row.contributor_id) if row.contributor_id.isdigit() else -1,
                                                    f"user {row.contributor_id}")}
                     for row in span.rows],
        })
    return payload | {
        "verbatim_spans": listed,
        "verbatim": {"span_hash": span_index.span_hash, "min_tokens": min_tokens, "max_rows": max_rows,
                     "span_royalty_bps": SPAN_ROYALTY_BPS},
    }
