"""Datanets ingestion engine: plain Python, no Django.

Reads contributor uploads safely and row by row (:func:`iter_rows`), screens them for exact and near
duplicates (:class:`UploadScreener`, :class:`NearDupIndex`), publishes immutable, verifiable versions
(:func:`write_version`, :func:`verify_version`, :func:`diff_versions`) and exports them
(:func:`export_version`). The Django app stores what these functions return; it holds no parsing or
hashing logic of its own.
"""

from .errors import IngestError, Rejection, RejectionCode
from .export import ExportFormat, encode_records, neutralise_formula
from .limits import IngestLimits
from .neardup import NearDupIndex, NearDupMatch, optimal_lsh_params, shingle_jaccard, shingle_set
from .normalise import canonical_json, clean_text, content_hash, normalise_text
from .rows import RowFlag, RowId, RowResult, RowStream, iter_json_rows, iter_rows
from .schema import DatanetSchema, SchemaError, TaskType
from .screen import KnownContent, UploadScreener
from .sniff import FileFormat, SniffResult, sniff_format
from .stats import ColumnStats, column_statistics
from .versions import (
    VerificationResult,
    VersionDiff,
    VersionManifest,
    VersionRow,
    diff_versions,
    export_version,
    iter_version_records,
    verify_version,
    write_version,
)

__all__ = [
    "ColumnStats",
    "DatanetSchema",
    "ExportFormat",
    "FileFormat",
    "IngestError",
    "IngestLimits",
    "KnownContent",
    "NearDupIndex",
    "NearDupMatch",
    "Rejection",
    "RejectionCode",
    "RowFlag",
    "RowId",
    "RowResult",
    "RowStream",
    "SchemaError",
    "SniffResult",
    "TaskType",
    "UploadScreener",
    "VerificationResult",
    "VersionDiff",
    "VersionManifest",
    "VersionRow",
    "canonical_json",
    "clean_text",
    "column_statistics",
    "content_hash",
    "diff_versions",
    "encode_records",
    "export_version",
    "iter_json_rows",
    "iter_rows",
    "iter_version_records",
    "neutralise_formula",
    "normalise_text",
    "optimal_lsh_params",
    "shingle_jaccard",
    "shingle_set",
    "sniff_format",
    "verify_version",
    "write_version",
]
