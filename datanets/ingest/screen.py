"""Duplicate screening of accepted rows: exact duplicates are rejected, conflicts and near-duplicates
are flagged for curators.

Exact identity is :func:`content_hash` (label excluded). Against rows already in the Datanet and
against earlier rows of the same upload:

* same content, same label (or no label) -> rejected with ``duplicate``;
* same content, different label -> accepted but flagged ``label_conflict``: one of the two labels is
  wrong and only a curator can tell which, so neither row is silently dropped;
* no exact match, but a MinHash estimate >= the index threshold -> accepted, flagged ``near_duplicate``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from .errors import Rejection, RejectionCode
from .neardup import NearDupIndex
from .rows import RowFlag, RowId, RowResult
from .schema import DatanetSchema

# Rows whose MinHash signatures are computed together: large enough to vectorise, small enough to stream.
SCREEN_CHUNK = 1024
LABEL_CONFLICT = "label_conflict"
NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True, slots=True)
class KnownContent:
    """What the Datanet already holds under a content hash (either part may be unknown)."""

    row_id: RowId | None = None
    label: str | None = None


ExistingContent = Mapping[str, KnownContent] | Collection[str] | Callable[[str], KnownContent | None]


def _lookup(existing: ExistingContent | None) -> Callable[[str], KnownContent | None]:
    if existing is None:
        return lambda _hash: None
    if isinstance(existing, Mapping):
        return existing.get
    if callable(existing):
        return existing
    hashes = existing
    return lambda content_hash: KnownContent() if content_hash in hashes else None


class UploadScreener:
    """Screens one upload's rows for duplicates; create one per upload.

    ``existing`` describes the Datanet's current rows: a set of content hashes (cheapest), a mapping
    hash -> :class:`KnownContent` (enables label-conflict detection and names the other row), or a
    lookup function. ``near_dup_index`` holds the Datanet's existing rows; it is only queried, never
    modified, because rows of an upload are not yet accepted by a curator. With
    ``near_dups_within_upload`` rows are also compared with earlier rows of the same upload (a private
    index with the same parameters).
    """

    def __init__(
        self,
        schema: DatanetSchema,
        existing: ExistingContent | None = None,
        near_dup_index: NearDupIndex | None = None,
        near_dups_within_upload: bool = True,
    ) -> None:
        self._schema = schema
        self._existing = _lookup(existing)
        self._index = near_dup_index
        self._seen: dict[str, RowResult] = {}
        self._precomputed: tuple[np.ndarray, np.ndarray] | None = None
        # Row number -> (signature, band keys) of every row that reached near-duplicate screening, so
        # the caller can index the stored rows without hashing their text again (signatures_of).
        self._computed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._upload_index: NearDupIndex | None = None
        if near_dups_within_upload:
            reference = near_dup_index or NearDupIndex()
            self._upload_index = NearDupIndex(
                reference.threshold, reference.num_perm, reference.shingle_size, reference.seed
            )

    def screen(self, row: RowResult) -> RowResult:
        """The row with a ``duplicate`` rejection or extra flags; rejected rows pass through unchanged."""
        if not row.accepted or row.fields is None or row.content_hash is None:
            return row
        label = row.fields.get("label")
        where = f"Line {row.line_number}" if row.line_number is not None else f"Row {row.row_number}"
        earlier = self._seen.get(row.content_hash)
        if earlier is not None:
            if earlier.fields is not None and earlier.fields.get("label") != label:
                flag = RowFlag(
                    LABEL_CONFLICT,
                    f"{where}: the same text appears in row {earlier.row_number} of this upload with the label "
                    f"'{earlier.fields.get('label')}'",
                    upload_row_number=earlier.row_number,
                )
                return replace(row, flags=row.flags + (flag,))
            return self._duplicate(
                row, f"{where}: exact duplicate of row {earlier.row_number} of this upload"
            )
        self._seen[row.content_hash] = row
        known = self._existing(row.content_hash)
        if known is not None:
            other = f"row {known.row_id}" if known.row_id is not None else "a row"
            if known.label is not None and label is not None and known.label != label:
                flag = RowFlag(
                    LABEL_CONFLICT,
                    f"{where}: the same text is already in this Datanet ({other}) with the label '{known.label}'",
                    existing_row_id=known.row_id,
                )
                return replace(row, flags=row.flags + (flag,))
            return self._duplicate(row, f"{where}: exact duplicate of {other} already in this Datanet")
        return replace(row, flags=row.flags + self._near_duplicate_flags(row.fields, row.row_number, where))

    def _duplicate(self, row: RowResult, message: str) -> RowResult:
        return replace(row, fields=None, rejection=Rejection(RejectionCode.DUPLICATE, message))

    def _near_duplicate_flags(
        self, fields: Mapping[str, object], row_number: int, where: str
    ) -> tuple[RowFlag, ...]:
        indexes = [index for index in (self._index, self._upload_index) if index is not None]
        if not indexes:
            return ()
        # One signature and one set of band keys serve both indexes (the upload index copies the Datanet
        # index's parameters); screen_all computes them for a whole chunk in one vectorised call.
        if self._precomputed is not None:
            signature, keys = self._precomputed
        else:
            signature = indexes[0].signatures([self._schema.comparison_text(fields)])
            keys = indexes[0].band_keys(signature)
        self._computed[row_number] = (signature, keys)
        flags = []
        if self._index is not None and (match := self._index.query_signature(signature[0], keys[0])) is not None:
            flags.append(
                RowFlag(
                    NEAR_DUPLICATE,
                    f"{where}: {match.estimated_jaccard:.0%} similar to row {match.row_id} already in this Datanet",
                    existing_row_id=match.row_id,
                    similarity=match.estimated_jaccard,
                )
            )
        if self._upload_index is not None:
            if (match := self._upload_index.query_signature(signature[0], keys[0])) is not None:
                flags.append(
                    RowFlag(
                        NEAR_DUPLICATE,
                        f"{where}: {match.estimated_jaccard:.0%} similar to row {match.row_id} of this upload",
                        upload_row_number=int(match.row_id),
                        similarity=match.estimated_jaccard,
                    )
                )
            self._upload_index.add_signatures([row_number], signature, keys)
        return tuple(flags)

    def signatures_of(self, row_numbers: Iterable[int]) -> tuple[list[int], np.ndarray, np.ndarray] | None:
        """(row numbers, signatures, band keys) already computed for these rows, for
        :meth:`NearDupIndex.add_signatures`; None when screening computed none."""
        found = [n for n in row_numbers if n in self._computed]
        if not found:
            return None
        signatures = np.concatenate([self._computed[n][0] for n in found])
        keys = np.concatenate([self._computed[n][1] for n in found])
        return found, signatures, keys

    def screen_all(self, rows: Iterable[RowResult]) -> Iterator[RowResult]:
        """The same results as :meth:`screen` row by row, with MinHash signatures and band keys computed
        for a chunk of rows at once: per-row numpy calls, not the hashing, dominated the cost."""
        chunk: list[RowResult] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == SCREEN_CHUNK:
                yield from self._screen_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._screen_chunk(chunk)

    def _screen_chunk(self, chunk: list[RowResult]) -> Iterator[RowResult]:
        reference = self._index if self._index is not None else self._upload_index
        candidates = [i for i, row in enumerate(chunk) if row.accepted and row.fields is not None]
        if reference is None or not candidates:
            yield from map(self.screen, chunk)
            return
        signatures = reference.signatures([self._schema.comparison_text(chunk[i].fields) for i in candidates])
        keys = reference.band_keys(signatures)
        position = {i: n for n, i in enumerate(candidates)}
        try:
            for i, row in enumerate(chunk):
                n = position.get(i)
                self._precomputed = None if n is None else (signatures[n : n + 1], keys[n : n + 1])
                yield self.screen(row)
        finally:
            self._precomputed = None
