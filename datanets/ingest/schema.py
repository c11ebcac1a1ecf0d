"""Datanet schemas: which columns a row must have, which labels exist, how long a field may be.

Column names are matched case-insensitively after stripping, because contributors' spreadsheets say
``Text`` and ``Label`` as often as ``text`` and ``label``; the canonical (declared) spelling is what
gets stored.

Unknown extra columns are *ignored with a note* rather than rejected: spreadsheets routinely carry
bookkeeping columns (ids, dates), and refusing the whole file for them would punish contributors for
data the Datanet never stores. The note tells them which columns were dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TaskType(StrEnum):
    TEXT_CLASSIFICATION = "text-classification"
    INSTRUCTION = "instruction"
    TEXT = "text"
    DOCUMENTS = "documents"


# (required columns, optional columns) for each task type, in storage order.
TASK_COLUMNS: dict[TaskType, tuple[tuple[str, ...], tuple[str, ...]]] = {
    TaskType.TEXT_CLASSIFICATION: (("text", "label"), ()),
    TaskType.INSTRUCTION: (("prompt", "response"), ("context",)),
    TaskType.TEXT: (("text",), ()),
    # A passage of an uploaded document (`document_rows`): where it came from travels with it.
    TaskType.DOCUMENTS: (("text", "document"), ("anchor", "page", "headings")),
}
# Where a task's content identity is narrower than "every task column but the label": a passage is the
# same content whichever document (or page of it) it was found in, so copies across documents and
# contributors are caught as duplicates.
TASK_CONTENT_COLUMNS: dict[TaskType, tuple[str, ...]] = {TaskType.DOCUMENTS: ("text",)}

# Columns the engine adds to published versions; metadata may not shadow them.
RESERVED_COLUMNS = frozenset({"row_id", "contributor_id", "content_hash"})

# Above csv's default field_size_limit (131,072) a field could not be parsed from CSV at all, and no
# training row needs more than this many characters in one field.
MAX_FIELD_LENGTH_CEILING = 100_000

_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class SchemaError(ValueError):
    """The schema itself is invalid (a curator or programming error, not an upload problem)."""


@dataclass(frozen=True)
class DatanetSchema:
    """The declared shape of a Datanet's rows.

    ``label_set`` is required (at least two labels) for text classification and must be empty for the
    other task types. ``metadata_columns`` are optional free-form scalar columns kept alongside each
    row (stored as strings). ``max_field_length`` counts characters after normalisation.
    """

    task_type: TaskType
    label_set: tuple[str, ...] = ()
    metadata_columns: tuple[str, ...] = ()
    max_field_length: int = 10_000
    max_rows_per_contribution: int = 100_000
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)
    # Derived once: content_columns is read twice per uploaded row (hashing, near-duplicate text).
    _content_columns: tuple[str, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        try:
            task_type = TaskType(self.task_type)
        except ValueError:
            raise SchemaError(
                f"Unknown task type {self.task_type!r}; expected one of {[t.value for t in TaskType]}"
            ) from None
        object.__setattr__(self, "task_type", task_type)
        object.__setattr__(self, "label_set", tuple(self.label_set))
        object.__setattr__(self, "metadata_columns", tuple(self.metadata_columns))
        self._check_labels()
        if not 1 <= self.max_field_length <= MAX_FIELD_LENGTH_CEILING:
            raise SchemaError(f"max_field_length must be between 1 and {MAX_FIELD_LENGTH_CEILING}")
        if self.max_rows_per_contribution < 1:
            raise SchemaError("max_rows_per_contribution must be at least 1")
        lookup: dict[str, str] = {}
        for name in self.columns:
            if name in self.metadata_columns and (
                not _COLUMN_NAME.match(name) or name.casefold() in RESERVED_COLUMNS
            ):
                raise SchemaError(f"Invalid metadata column name {name!r}")
            key = name.casefold()
            if key in lookup:
                raise SchemaError(f"Column {name!r} is declared twice (names are case-insensitive)")
            lookup[key] = name
        object.__setattr__(self, "_lookup", lookup)
        required, optional = TASK_COLUMNS[task_type]
        content = TASK_CONTENT_COLUMNS.get(task_type) or tuple(c for c in required + optional if c != "label")
        object.__setattr__(self, "_content_columns", content)

    def _check_labels(self) -> None:
        if self.task_type is TaskType.DOCUMENTS and self.metadata_columns:
            raise SchemaError("A documents Datanet has no metadata columns: each passage keeps its document, "
                              "anchor, page and headings")
        if self.task_type is not TaskType.TEXT_CLASSIFICATION:
            if self.label_set:
                raise SchemaError(f"A {self.task_type.value} Datanet has no labels")
            return
        if len(self.label_set) < 2:
            raise SchemaError("A text-classification Datanet needs at least two labels")
        if any(not isinstance(label, str) or not label or label != label.strip() for label in self.label_set):
            raise SchemaError("Labels must be non-empty strings without surrounding whitespace")
        if len(set(self.label_set)) != len(self.label_set):
            raise SchemaError("Labels must be unique")

    @property
    def required_columns(self) -> tuple[str, ...]:
        return TASK_COLUMNS[self.task_type][0]

    @property
    def optional_task_columns(self) -> tuple[str, ...]:
        return TASK_COLUMNS[self.task_type][1]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every stored column, in storage order: task columns, then metadata."""
        required, optional = TASK_COLUMNS[self.task_type]
        return required + optional + self.metadata_columns

    @property
    def content_columns(self) -> tuple[str, ...]:
        """Columns that define a row's content identity (hashed for exact de-duplication).

        The label is deliberately excluded: the same text submitted with another label is the same
        content, and must surface as a label conflict rather than slip in as a "new" row.
        """
        return self._content_columns

    def resolve_column(self, name: str) -> str | None:
        """Canonical declared name for a header/key as found in a file, or None if undeclared."""
        return self._lookup.get(name.strip().casefold())

    def comparison_text(self, fields: Mapping[str, Any]) -> str:
        """The text compared for near-duplicates: all content columns joined in declared order."""
        return "\n".join(str(fields.get(c) or "") for c in self._content_columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type.value,
            "label_set": list(self.label_set),
            "metadata_columns": list(self.metadata_columns),
            "max_field_length": self.max_field_length,
            "max_rows_per_contribution": self.max_rows_per_contribution,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatanetSchema:
        known = {
            "task_type",
            "label_set",
            "metadata_columns",
            "max_field_length",
            "max_rows_per_contribution",
        }
        unknown = set(data) - known
        if unknown:
            raise SchemaError(f"Unknown schema keys: {sorted(unknown)}")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DatanetSchema:
        return cls.from_dict(json.loads(text))
