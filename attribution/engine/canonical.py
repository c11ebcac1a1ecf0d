"""Canonical JSON and hashing.

Index manifests and receipts are hashed; the hash is only meaningful if the same content always
serialises to the same bytes. Canonical form here: UTF-8 JSON with sorted keys, no insignificant
whitespace and floats written by Python's shortest round-trip ``repr`` (so a float read back from
the JSON hashes identically).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_FILE_CHUNK_BYTES = 1 << 20


def canonical_json(payload: Any) -> bytes:
    """Serialise ``payload`` to canonical JSON bytes (sorted keys, compact, NaN rejected)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_sha256(payload: Any) -> str:
    """sha256 of the canonical JSON form of ``payload``."""
    return sha256_hex(canonical_json(payload))


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed so shard files never need to fit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_FILE_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def derived_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts``, so each projection block or sampler gets its own stream
    that depends only on the recorded seed and the block's name, not on iteration order."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big") >> 1
