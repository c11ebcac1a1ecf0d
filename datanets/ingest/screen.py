"""Duplicate screening of accepted rows: exact duplicates are rejected, conflicts and near-duplicates
are flagged for curators.

Exact identity is :func:`content_hash` (label excluded). Against rows already in the Datanet and
against earlier rows of the same upload:

* same content, same label (or no label) -> rejected with ``duplicate``;
* same content, different label -> accepted but flagged ``label_conflict``: one of the two labels is
  wrong and only a curator can tell which, so neither row is silently dropped;
* no exact match, but a MinHash estimate >= the index threshold -> accepted, flagged ``near_duplicate``.

Messages name rows the contributor's way: a row of the same upload by its line in the file ("line 4",
or "row 4" where the upload has no lines), and a row already in the Datanet as ``describe_existing``
describes it (the caller knows who uploads and what they may see; the default names its id).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .errors import Rejection, RejectionCode
from .neardup import NearDupIndex
from .rows import RowFlag, RowId, RowResult, content_preview, where
from .schema import DatanetSchema

# Rows screened together: large enough that per-chunk numpy calls are amortised, small enough to stream.
SCREEN_CHUNK = 2048
LABEL_CONFLICT = "label_conflict"
NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True, slots=True)
class KnownContent:
    """What the Datanet already holds under a content hash (either part may be unknown)."""

    row_id: RowId | None = None
    label: str | None = None


ExistingContent = Mapping[str, KnownContent] | Collection[str] | Callable[[str], KnownContent | None]
# Row ids already in the Datanet -> how to name each one in a message to this upload's contributor
# (e.g. 'your row “…” (line 3 of “a.csv”)'); called at most twice per chunk of rows, with every id the
# chunk refers to. Ids it leaves out are named by :func:`default_existing_description`.
DescribeExisting = Callable[[Sequence[RowId]], Mapping[RowId, str]]


def default_existing_description(row_id: RowId | None) -> str:
    return f"row {row_id} already in this Datanet" if row_id is not None else "a row already in this Datanet"


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

    Rows are screened a chunk at a time (:meth:`screen_all`): the exact checks are dictionary look-ups
    per row; the near-duplicate work (signatures, band keys, bucket look-ups, similarity estimates, and
    the within-upload index update) is a handful of numpy operations over the whole chunk.
    """

    def __init__(
        self,
        schema: DatanetSchema,
        existing: ExistingContent | None = None,
        near_dup_index: NearDupIndex | None = None,
        near_dups_within_upload: bool = True,
        describe_existing: DescribeExisting | None = None,
    ) -> None:
        self._schema = schema
        self._existing = _lookup(existing)
        self._index = near_dup_index
        self._seen: dict[str, RowResult] = {}
        self._describe = describe_existing
        self._descriptions: dict[RowId, str] = {}
        self._line_of: dict[int, int | None] = {}  # upload row number -> its line, for rows indexed here
        self._location_of: dict[int, str] = {}  # the same, for rows a reader located otherwise (documents)
        # (row numbers, signatures, band keys) of each chunk's rows that reached near-duplicate
        # screening, so the caller can index the stored rows without hashing their text again.
        self._computed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._upload_index: NearDupIndex | None = None
        if near_dups_within_upload:
            reference = near_dup_index or NearDupIndex()
            self._upload_index = NearDupIndex(
                reference.threshold, reference.num_perm, reference.shingle_size, reference.seed
            )

    def screen(self, row: RowResult) -> RowResult:
        """The row with a ``duplicate`` rejection or extra flags; rejected rows pass through unchanged."""
        return self._screen_chunk([row])[0]

    def screen_all(self, rows: Iterable[RowResult]) -> Iterator[RowResult]:
        """:meth:`screen` for every row, in order, computed a chunk of rows at a time."""
        chunk: list[RowResult] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == SCREEN_CHUNK:
                yield from self._screen_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._screen_chunk(chunk)

    def signatures_of(self, row_numbers: Iterable[int]) -> tuple[list[int], np.ndarray, np.ndarray] | None:
        """(row numbers, signatures, band keys) already computed for those of these rows that reached
        near-duplicate screening, in screening order, for :meth:`NearDupIndex.add_signatures`; None
        when screening computed none of them."""
        if not self._computed:
            return None
        wanted = np.fromiter(row_numbers, dtype=np.int64)
        numbers = np.concatenate([numbers for numbers, _, _ in self._computed])
        found = np.isin(numbers, wanted)
        if not found.any():
            return None
        signatures = np.concatenate([signatures for _, signatures, _ in self._computed])[found]
        keys = np.concatenate([keys for _, _, keys in self._computed])[found]
        return numbers[found].tolist(), signatures, keys

    def _upload_where(self, row_number: int) -> str:
        return self._location_of.get(row_number) or where(row_number, self._line_of.get(row_number))

    # --- exact ------------------------------------------------------------------------------------

    @staticmethod
    def _where(row: RowResult) -> str:
        # Only the first letter: a location names a document, whose spelling is the contributor's.
        return row.where[:1].upper() + row.where[1:]

    def _describe_ids(self, row_ids: Iterable[RowId | None]) -> None:
        if self._describe is None:
            return
        missing = [i for i in dict.fromkeys(row_ids) if i is not None and i not in self._descriptions]
        if missing:
            self._descriptions.update(self._describe(missing))

    def _existing_row(self, row_id: RowId | None) -> str:
        if row_id is not None and row_id in self._descriptions:
            return self._descriptions[row_id]
        return default_existing_description(row_id)

    def _screen_exact(self, row: RowResult) -> RowResult | None:
        """The row's result when exact identity decides it (a duplicate, a label conflict), or None
        when it goes on to near-duplicate screening."""
        label = row.fields.get("label")
        earlier = self._seen.get(row.content_hash)
        if earlier is not None:
            if earlier.fields is not None and earlier.fields.get("label") != label:
                flag = RowFlag(
                    LABEL_CONFLICT,
                    f"{self._where(row)}: the same text appears on {earlier.where} of this upload with "
                    f"the label '{earlier.fields.get('label')}'",
                    upload_row_number=earlier.row_number,
                )
                return replace(row, flags=row.flags + (flag,))
            return self._duplicate(
                row,
                f"{self._where(row)}: exact duplicate of {earlier.where} of this upload",
                upload_row=earlier.row_number,
            )
        self._seen[row.content_hash] = row
        known = self._existing(row.content_hash)
        if known is not None:
            other = self._existing_row(known.row_id)
            if known.label is not None and label is not None and known.label != label:
                flag = RowFlag(
                    LABEL_CONFLICT,
                    f"{self._where(row)}: the same text as {other}, with the label '{known.label}'",
                    existing_row_id=known.row_id,
                )
                return replace(row, flags=row.flags + (flag,))
            return self._duplicate(row, f"{self._where(row)}: exact duplicate of {other}")
        return None

    def _duplicate(self, row: RowResult, message: str, upload_row: int | None = None) -> RowResult:
        return replace(row, fields=None, content=content_preview(row.fields),
                       rejection=Rejection(RejectionCode.DUPLICATE, message, upload_row))

    # --- chunks -----------------------------------------------------------------------------------

    def _screen_chunk(self, chunk: list[RowResult]) -> list[RowResult]:
        results = list(chunk)
        pending: list[int] = []  # positions of rows that go on to near-duplicate screening
        if self._describe is not None:
            self._describe_ids(
                known.row_id
                for row in chunk
                if row.accepted and row.content_hash is not None and row.content_hash not in self._seen
                and (known := self._existing(row.content_hash)) is not None
            )
        for i, row in enumerate(chunk):
            if not row.accepted or row.fields is None or row.content_hash is None:
                continue
            decided = self._screen_exact(row)
            if decided is None:
                pending.append(i)
            else:
                results[i] = decided
        reference = self._index if self._index is not None else self._upload_index
        if reference is None or not pending:
            return results
        # One set of signatures and band keys serves both indexes (the upload index copies the Datanet
        # index's parameters).
        signatures = reference.signatures([self._schema.comparison_text(chunk[i].fields) for i in pending])
        keys = reference.band_keys(signatures)
        row_numbers = [chunk[i].row_number for i in pending]
        for i in pending:
            self._line_of[chunk[i].row_number] = chunk[i].line_number
            if chunk[i].location:
                self._location_of[chunk[i].row_number] = chunk[i].location
        self._computed.append((np.asarray(row_numbers, dtype=np.int64), signatures, keys))
        in_datanet = self._index.query_signatures(signatures, keys) if self._index is not None else None
        in_upload = None
        if self._upload_index is not None:
            # Index the chunk first, then let each row match only rows indexed before it: earlier rows
            # of this chunk and of earlier chunks, exactly as if rows were screened one by one.
            first = len(self._upload_index)
            self._upload_index.add_signatures(row_numbers, signatures, keys)
            in_upload = self._upload_index.query_signatures(
                signatures, keys, before=np.arange(first, first + len(pending))
            )
        if in_datanet is not None:
            self._describe_ids(match.row_id for match in in_datanet if match is not None)
        for n, i in enumerate(pending):
            flags = []
            if in_datanet is not None and (match := in_datanet[n]) is not None:
                flags.append(
                    RowFlag(
                        NEAR_DUPLICATE,
                        f"{self._where(chunk[i])}: {match.estimated_jaccard:.0%} similar to "
                        f"{self._existing_row(match.row_id)}",
                        existing_row_id=match.row_id,
                        similarity=match.estimated_jaccard,
                    )
                )
            if in_upload is not None and (match := in_upload[n]) is not None:
                flags.append(
                    RowFlag(
                        NEAR_DUPLICATE,
                        f"{self._where(chunk[i])}: {match.estimated_jaccard:.0%} similar to "
                        f"{self._upload_where(int(match.row_id))} of this upload",
                        upload_row_number=int(match.row_id),
                        similarity=match.estimated_jaccard,
                    )
                )
            if flags:
                results[i] = replace(chunk[i], flags=chunk[i].flags + tuple(flags))
        return results
