"""Outcome vocabulary of the ingestion engine: file-level errors and per-row rejection codes.

A file-level problem (the file as a whole cannot be read safely) raises :class:`IngestError`; a problem
confined to one row never raises, it becomes a :class:`Rejection` on that row's result so that one bad
line never costs the contributor the rest of the upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IngestError(Exception):
    """The whole upload cannot be ingested.

    ``code`` is a stable machine-readable identifier (store it, branch on it); ``message`` is written
    for the contributor: it says what is wrong and what to do about it. The error may be raised before
    the first row or in the middle of iteration (a gzip bomb is only discovered while decompressing):
    in both cases the caller should discard every row already received from that upload.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RejectionCode(StrEnum):
    """Why a single row was not accepted into review."""

    BAD_ENCODING = "bad_encoding"
    BAD_CSV = "bad_csv"
    BAD_JSON = "bad_json"
    MISSING_COLUMN = "missing_column"
    UNKNOWN_LABEL = "unknown_label"
    EMPTY_TEXT = "empty_text"
    TOO_LONG = "too_long"
    WRONG_TYPE = "wrong_type"
    TOO_DEEP = "too_deep"
    TOO_MANY_COLUMNS = "too_many_columns"
    LINE_TOO_LONG = "line_too_long"
    TOO_MANY_ROWS = "too_many_rows"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row-level refusal: a stable code plus a message that names the line and the fix.

    A ``duplicate`` of an earlier row of the same upload names that row in ``duplicate_of_upload_row``,
    so that whoever stores the upload can link the two."""

    code: RejectionCode
    message: str
    duplicate_of_upload_row: int | None = None
