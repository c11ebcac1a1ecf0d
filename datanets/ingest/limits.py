"""Resource limits applied while reading an upload.

Every limit exists because some hostile or broken file would otherwise exhaust memory, disk or CPU;
each is checked while streaming, so a violation is detected after reading at most about one chunk
past the limit, never after materialising the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Configurable bounds for one upload. The defaults suit a web upload form.

    ``max_gzip_ratio`` is only enforced once ``gzip_ratio_grace_bytes`` have been decompressed, because a
    small, very repetitive file legitimately compresses far better than real data sets do, while a gzip
    bomb betrays itself within its first megabyte.
    """

    max_upload_bytes: int = 100 * MB
    max_decompressed_bytes: int = 200 * MB
    max_gzip_ratio: float = 100.0
    gzip_ratio_grace_bytes: int = 1 * MB
    max_line_bytes: int = 1 * MB
    max_rows: int = 1_000_000
    max_json_depth: int = 16
    max_columns: int = 256
    # Parquet is decoded one row group at a time; a single row group bigger than this could not be
    # read in bounded memory, so such files are refused and the contributor asked to rewrite them.
    max_parquet_row_group_bytes: int = 64 * MB

    def __post_init__(self) -> None:
        for name in (
            "max_upload_bytes",
            "max_decompressed_bytes",
            "max_line_bytes",
            "max_rows",
            "max_json_depth",
            "max_columns",
            "max_parquet_row_group_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"IngestLimits.{name} must be positive")
        if self.max_gzip_ratio <= 1:
            raise ValueError("IngestLimits.max_gzip_ratio must be greater than 1")


def describe_bytes(size: int) -> str:
    """Human-readable size for messages shown to contributors (binary megabytes, as upload forms use)."""
    if size >= MB:
        return f"{size / MB:g} MB"
    if size >= 1024:
        return f"{size / 1024:g} KB"
    return f"{size} bytes"
