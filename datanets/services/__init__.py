"""Writes for Datanets. Each function takes keyword arguments, runs in one transaction and records an
audit event in it. Long work (parsing a file, writing a version) is queued on commit as a task.

Callers import this package (`from datanets import services; services.records_review(...)`); each write
lives in the module named for what it does:

* `datanets`: `datanet_create`, `datanet_update` (the settings a Datanet's owner may change, `EDITABLE_FIELDS`).
* `membership`: `membership_set`, `membership_remove` (curators and contributors).
* `access`: training access requests (`access_request_create`, `access_request_decide`).
* `contributions`: an upload or JSON rows is stored once under its sha256 and queued for validation
  (`contribution_create_from_file`, `contribution_create_from_rows`; a Documents Datanet's documents,
  several stored as one zip, `contribution_create_from_documents`).
* `validation`: the upload pipeline's job, `contribution_validate` (parse, screen, write every row's result).
* `stake_quota`: in a Datanet that requires a stake, the rows per day a contributor may add scale with their
  stake (`stake_quota_check_upload` at upload, `stake_quota_cap` at validation, which locks the contributor's
  quota on the Datanet in the transaction that stores the rows).
* `near_duplicates`: each Datanet's cached MinHash index (`near_dup_index_load`, `near_dup_index_save`).
* `review`: `records_review`, staff's `records_moderate`, `records_flag_mislabeled` (after valuation).
* `versions`: `version_publish`, `version_verify`, `version_diff`, `version_export`, `version_files_local`.
* `notifications`: e-mail to a contributor when their contribution is reviewed.
* `constants`: `HASH_CHUNK`, `DB_BATCH`.

The parsing, screening and version files are the ingest engine's (`datanets.ingest`).
"""

from .access import access_request_create, access_request_decide
from .constants import DB_BATCH, HASH_CHUNK
from .contributions import (
    contribution_create_from_documents,
    contribution_create_from_file,
    contribution_create_from_rows,
)
from .datanets import EDITABLE_FIELDS, SCHEMA_FIELDS, datanet_create, datanet_update
from .membership import membership_remove, membership_set
from .near_duplicates import near_dup_index_load, near_dup_index_save
from .notifications import contribution_reviewed_email_send
from .review import MODERATION_REASON, Decision, records_flag_mislabeled, records_moderate, records_review
from .validation import (
    PROGRESS_EVERY_S,
    PROGRESS_PARSE_SHARE,
    PROGRESS_SCREEN_SHARE,
    RECORD_COPY_COLUMNS,
    VALIDATION_LABEL,
    contribution_validate,
)
from .versions import (
    EXPORT_TYPES,
    VERSION_FILES,
    VersionCheck,
    version_diff,
    version_export,
    version_files_local,
    version_publish,
    version_verify,
)

__all__ = [
    "DB_BATCH",
    "EDITABLE_FIELDS",
    "EXPORT_TYPES",
    "HASH_CHUNK",
    "MODERATION_REASON",
    "PROGRESS_EVERY_S",
    "PROGRESS_PARSE_SHARE",
    "PROGRESS_SCREEN_SHARE",
    "RECORD_COPY_COLUMNS",
    "SCHEMA_FIELDS",
    "VALIDATION_LABEL",
    "VERSION_FILES",
    "Decision",
    "VersionCheck",
    "access_request_create",
    "access_request_decide",
    "contribution_create_from_documents",
    "contribution_create_from_file",
    "contribution_create_from_rows",
    "contribution_reviewed_email_send",
    "contribution_validate",
    "datanet_create",
    "datanet_update",
    "membership_remove",
    "membership_set",
    "near_dup_index_load",
    "near_dup_index_save",
    "records_flag_mislabeled",
    "records_moderate",
    "records_review",
    "version_diff",
    "version_export",
    "version_files_local",
    "version_publish",
    "version_verify",
]
