"""Reads for Datanets, and the one place that decides who may see or do what.

Private Datanets are invisible to non-members everywhere (pages, API, search): every query that lists
or fetches a Datanet, a row or a version goes through `datanets_visible_to`.

Callers import this package (`from datanets import selectors; selectors.datanet_permissions(...)`); each read
lives in the module named for what it reads:

* `access`: roles and permissions (`datanet_role`, `datanet_permissions`), the Datanets a user may see
  (`datanets_visible_to`, `datanet_get_visible`), the Datanet search with accepted-row counts, and who asked
  for training access.
* `records`: rows (the data viewer, documents, a version diff's rows, rows named in messages) and versions
  (`versions_for`, `version_get`, what a user may train on, a version's training rows, `records_by_uid`).
* `contributions`: uploads (a Datanet's, a person's, one with its row-errors CSV) and the review queue.
* `stats`: a Datanet's statistics, review progress, the leaderboard and a contributor's profile, and the
  per-day rows of insights' summaries.
* `lookups`: reads by id for the other apps, which never import `datanets.models`.
"""

from .access import (
    DatanetPermissions,
    datanet_accepted_rows,
    datanet_get_visible,
    datanet_ids_visible_among,
    datanet_permissions,
    datanet_role,
    datanet_search,
    datanets_visible_to,
    training_access_requests_for,
    with_accepted_rows,
)
from .contributions import (
    ROW_ERROR_COLUMNS,
    contribution_error_table,
    contribution_get_for,
    contributions_for_user,
    contributions_overview_for,
    datanet_recent_contributions,
    review_queue,
    review_record_get,
    rows_rejected_by_curators_for,
    rows_rejected_recently_count,
)
from .lookups import (
    contribution_by_id,
    datanets_by_id,
    datanets_owned_by,
    record_copy_links,
    records_by_id,
    training_access_request_by_id,
    version_by_id,
    version_record_pairs,
    versions_by_id,
    versions_hidden_from,
    versions_visible_to,
)
from .records import (
    DOCUMENTS_LISTED,
    documents_in,
    existing_rows_described_to,
    latest_version_rows_by_contributor,
    records_by_uid,
    rows_for_viewer,
    trainable_versions_for,
    version_get,
    version_rows_among,
    version_training_rows,
    versions_for,
    versions_shared_row_counts,
)
from .stats import (
    contribution_daily_totals,
    contributor_activity,
    contributor_first_contributions,
    contributor_profile,
    datanet_ids_visible_to,
    datanet_stats,
    leaderboard,
    review_daily_totals,
    review_progress,
)

__all__ = [
    "DOCUMENTS_LISTED",
    "DatanetPermissions",
    "ROW_ERROR_COLUMNS",
    "contribution_by_id",
    "contribution_daily_totals",
    "contribution_error_table",
    "contribution_get_for",
    "contributions_for_user",
    "contributions_overview_for",
    "contributor_activity",
    "contributor_first_contributions",
    "contributor_profile",
    "datanet_accepted_rows",
    "datanet_get_visible",
    "datanet_ids_visible_among",
    "datanet_ids_visible_to",
    "datanet_permissions",
    "datanet_recent_contributions",
    "datanet_role",
    "datanet_search",
    "datanet_stats",
    "datanets_by_id",
    "datanets_owned_by",
    "datanets_visible_to",
    "documents_in",
    "existing_rows_described_to",
    "latest_version_rows_by_contributor",
    "leaderboard",
    "record_copy_links",
    "records_by_id",
    "records_by_uid",
    "review_daily_totals",
    "review_progress",
    "review_queue",
    "review_record_get",
    "rows_for_viewer",
    "rows_rejected_by_curators_for",
    "rows_rejected_recently_count",
    "trainable_versions_for",
    "training_access_request_by_id",
    "training_access_requests_for",
    "version_by_id",
    "version_get",
    "version_record_pairs",
    "version_rows_among",
    "version_training_rows",
    "versions_by_id",
    "versions_for",
    "versions_hidden_from",
    "versions_shared_row_counts",
    "versions_visible_to",
    "with_accepted_rows",
]
