"""Text normalisation and content hashing.

Two strengths of normalisation, for two purposes:

* :func:`clean_text` is what gets *stored*: Unicode NFC, Windows/old-Mac newlines turned into ``\\n``,
  surrounding whitespace stripped. Inner whitespace and case are preserved because they matter to a
  model (code blocks in instruction responses, capitalisation).
* :func:`normalise_text` is what gets *compared*: additionally every whitespace run becomes one space,
  and with ``casefold=True`` case differences vanish. Two rows that differ only there are the same
  content for de-duplication.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
import unicodedata
from collections.abc import Mapping
from typing import Any

from .schema import DatanetSchema

# The encoder json.dumps(..., ensure_ascii=False) uses for strings (its C implementation when built).
_encode_string = json.encoder.encode_basestring


def clean_text(text: str) -> str:
    """Storage form of a text field: NFC, ``\\n`` line endings, stripped."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def normalise_text(text: str, *, casefold: bool = False) -> str:
    """Comparison form of a text: NFC, whitespace runs collapsed to one space, stripped.

    ``casefold=True`` is used only for hashing and near-duplicate shingling, never for storage.
    """
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())
    return text.casefold() if casefold else text


def canonical_json(value: Any) -> bytes:
    """The one byte encoding used wherever JSON is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_hash(fields: Mapping[str, Any], schema: DatanetSchema) -> str:
    """sha256 (hex) of a row's content identity.

    Covers the schema's content columns (the label and metadata are excluded, see
    :attr:`DatanetSchema.content_columns`), each normalised with :func:`normalise_text` and casefolded;
    a missing optional column hashes like an empty one.
    """
    identity = {c: normalise_text(str(fields.get(c) or ""), casefold=True) for c in schema.content_columns}
    return hashlib.sha256(_canonical_json_of_strings(identity)).hexdigest()


def _canonical_json_of_strings(mapping: Mapping[str, str]) -> bytes:
    """``canonical_json`` of a flat str -> str mapping, byte for byte, built from the json module's own
    string encoder: a quarter of the cost of ``json.dumps``, which sets up a new encoder on every call
    (content hashing runs once per uploaded row)."""
    items = ",".join(f"{_encode_string(key)}:{_encode_string(mapping[key])}" for key in sorted(mapping))
    return f"{{{items}}}".encode()
