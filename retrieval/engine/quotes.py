"""Extractive answers: the sentence of a passage that best answers a question.

**Sentence rule.** A passage's text is cut into paragraphs at blank lines (document extraction puts headings and
paragraphs on their own, blank-line-separated blocks); the lines inside a paragraph are joined with a space
(a PDF's text layer wraps sentences over lines); each paragraph is cut after a ``.``, ``!``, ``?`` or ``…``
(with any closing quote or bracket) that is followed by whitespace and then an upper-case letter, a digit or an
opening quote. So "at spring tide and\\npowers about 31,000 homes." stays one sentence, and "Dr. Smith" is cut in
two (an accepted imprecision: the quote is still the passage's own words). Sentences of fewer than
``MIN_WORDS`` words (headings, mostly) are only chosen when the passage has nothing longer.

**Choice.** Every candidate sentence is embedded with the model that embedded the passages, and the one whose
unit vector has the largest dot product with the question's is quoted (ties: the earlier sentence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

MIN_WORDS = 4
MAX_SENTENCES = 64  # sentences of one passage considered (a passage is a few hundred tokens)
MAX_SENTENCE_CHARS = 1000

_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"”’')\]]*\s+(?=[A-Z0-9\"“‘(\[À-ÖØ-Þ])")


def split_sentences(text: str) -> list[str]:
    """The passage's sentences in order, whitespace collapsed, by the rule above (at most ``MAX_SENTENCES``)."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPHS.split(text or ""):
        joined = " ".join(paragraph.split())
        if not joined:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(joined):
            sentences.append(joined[start:match.start() + len(match.group(0).rstrip())].strip())
            start = match.end()
        sentences.append(joined[start:].strip())
    return [s[:MAX_SENTENCE_CHARS] for s in sentences if s][:MAX_SENTENCES]


def candidates(sentences: Sequence[str]) -> list[int]:
    """Positions of the sentences that may be quoted: those of at least ``MIN_WORDS`` words, or all of them when
    none is that long."""
    long_enough = [i for i, sentence in enumerate(sentences) if len(sentence.split()) >= MIN_WORDS]
    return long_enough or list(range(len(sentences)))


def best_sentence(sentences: Sequence[str], vectors: np.ndarray, query_vector: np.ndarray) -> int:
    """Position (in ``sentences``) of the sentence to quote; ``vectors`` holds one unit row per sentence."""
    if not len(sentences):
        raise ValueError("no sentences to choose from")
    scores = np.asarray(vectors, dtype=np.float32) @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
    return int(np.argmax(scores))  # argmax returns the first of equal maxima
