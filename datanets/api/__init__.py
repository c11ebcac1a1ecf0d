"""Datanets REST API (`/api/v1/datanets/...`): thin views over `datanets.services` and `datanets.selectors`,
one module per resource:

| module | views |
| --- | --- |
| `base.py` | `DatanetsView`, `SignedInView`, the error shapes and path parameters of the schema |
| `datanets.py` | list/search and create, a Datanet and its settings, stats, leaderboard |
| `members.py` | members and their roles |
| `contributions.py` | uploads (file or JSON rows), a contribution's status, its row errors (JSON and CSV) |
| `records.py` | the review queue (accepted rows for non-curators) and review decisions |
| `versions.py` | publish, read, verify, diff and download versions |
| `access.py` | training-access requests and the owner's decision |

Every view below a Datanet resolves it through `selectors.datanet_get_visible` *before* checking scopes,
so a private Datanet answers 404 to anyone who may not see it, whatever they send. Services raise
Django's `ValidationError` (→ 400 `invalid` with `fields`) and `PermissionDenied` (→ 403).

The names below are re-exported so `datanets/api_urls.py` and other apps (`retrieval.api`) keep writing
`from datanets import api` / `from datanets.api import DatanetsView`.
"""

from .access import AccessRequestDecideView, AccessRequestListView
from .base import (
    CONTRIBUTION_ID,
    ERROR_RESPONSE,
    ERRORS,
    READ_ERRORS,
    SLUG,
    TAGS,
    VERSION_NUMBER,
    DatanetsView,
    IgnoreFormatNegotiation,
    SignedInView,
    paginated_schema,
)
from .contributions import (
    ContributionDetailView,
    ContributionErrorsCsvView,
    ContributionErrorsView,
    ContributionListView,
)
from .datanets import DatanetDetailView, DatanetLeaderboardView, DatanetListView, DatanetStatsView
from .members import MemberDetailView, MemberListView
from .records import RecordListView, RecordReviewView
from .versions import (
    VersionDetailView,
    VersionDiffView,
    VersionDownloadView,
    VersionListView,
    VersionVerifyView,
)

__all__ = [
    "CONTRIBUTION_ID",
    "ERRORS",
    "ERROR_RESPONSE",
    "READ_ERRORS",
    "SLUG",
    "TAGS",
    "VERSION_NUMBER",
    "AccessRequestDecideView",
    "AccessRequestListView",
    "ContributionDetailView",
    "ContributionErrorsCsvView",
    "ContributionErrorsView",
    "ContributionListView",
    "DatanetDetailView",
    "DatanetLeaderboardView",
    "DatanetListView",
    "DatanetStatsView",
    "DatanetsView",
    "IgnoreFormatNegotiation",
    "MemberDetailView",
    "MemberListView",
    "RecordListView",
    "RecordReviewView",
    "SignedInView",
    "VersionDetailView",
    "VersionDiffView",
    "VersionDownloadView",
    "VersionListView",
    "VersionVerifyView",
    "paginated_schema",
]
