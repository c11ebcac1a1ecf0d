"""Turn one raw record (column -> value as found in the file) into normalised fields, or say why not.

Raw values come from CSV (always strings), JSON (any JSON value) or Parquet (Python scalars). Text
columns must hold strings; a label may also be an integer when its decimal form is a declared label
(``0``/``1`` datasets are common); metadata scalars are stored as strings (booleans as ``true``/
``false``) so that a version's Parquet columns have one type whatever the upload format was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import RejectionCode
from .normalise import clean_text
from .schema import DatanetSchema

Fields = dict[str, str | None]


class RowInvalid(Exception):
    """Internal signal carrying a rejection code and the contributor-facing detail."""

    def __init__(self, code: RejectionCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _checked_text(column: str, value: str, schema: DatanetSchema) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: JSON "\ud800" escapes, or undecodable bytes smuggled through.
        raise RowInvalid(
            RejectionCode.BAD_ENCODING, f"'{column}' contains characters that are not valid Unicode"
        ) from None
    text = clean_text(value)
    if len(text) > schema.max_field_length:
        raise RowInvalid(
            RejectionCode.TOO_LONG,
            f"'{column}' has {len(text):,} characters; the limit is {schema.max_field_length:,}",
        )
    return text


def _task_text(column: str, value: Any, schema: DatanetSchema, required: bool) -> str:
    if value is None:
        if required:
            raise RowInvalid(RejectionCode.MISSING_COLUMN, f"the required column '{column}' is missing")
        return ""
    if not isinstance(value, str):
        raise RowInvalid(RejectionCode.WRONG_TYPE, f"'{column}' must be text, not {_type_name(value)}")
    text = _checked_text(column, value, schema)
    if required and not text:
        raise RowInvalid(RejectionCode.EMPTY_TEXT, f"'{column}' is empty")
    return text


def _label(value: Any, schema: DatanetSchema) -> str:
    if value is None:
        raise RowInvalid(RejectionCode.MISSING_COLUMN, "the required column 'label' is missing")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RowInvalid(RejectionCode.WRONG_TYPE, f"'label' must be text, not {_type_name(value)}")
    label = value.strip()
    if label not in schema.label_set:
        if not label:
            raise RowInvalid(RejectionCode.EMPTY_TEXT, "'label' is empty")
        allowed = ", ".join(schema.label_set[:20]) + (", ..." if len(schema.label_set) > 20 else "")
        shown = label if len(label) <= 60 else label[:57] + "..."
        raise RowInvalid(RejectionCode.UNKNOWN_LABEL, f"the label '{shown}' is not one of: {allowed}")
    return label


def _metadata(column: str, value: Any, schema: DatanetSchema) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _checked_text(column, value, schema) or None
    if isinstance(value, list | tuple | dict | bytes | bytearray):
        raise RowInvalid(
            RejectionCode.WRONG_TYPE, f"'{column}' must be a single value, not {_type_name(value)}"
        )
    return _checked_text(column, str(value), schema) or None  # dates, decimals from Parquet


def validate_values(values: Mapping[str, Any], schema: DatanetSchema) -> Fields:
    """Normalised fields for every declared column, or raise :class:`RowInvalid`.

    ``values`` is keyed by canonical column names (the reader resolved the file's spelling).
    """
    fields: Fields = {}
    for column in schema.required_columns:
        value = values.get(column)
        fields[column] = (
            _label(value, schema) if column == "label" else _task_text(column, value, schema, True)
        )
    for column in schema.optional_task_columns:
        fields[column] = _task_text(column, values.get(column), schema, False)
    for column in schema.metadata_columns:
        fields[column] = _metadata(column, values.get(column), schema)
    return fields
