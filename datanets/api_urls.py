"""Datanets REST API routes; the project includes them under `/api/v1/` (see `lineage/urls.py`).

Explicit paths rather than a router: the resources nest under a Datanet's slug and several actions
(review, verify, diff, download, decide) are not CRUD.
"""

from django.urls import path

from . import api

D = "datanets/<slug:slug>/"

urlpatterns = [
    path("datanets/", api.DatanetListView.as_view(), name="datanets-api-list"),
    path(D, api.DatanetDetailView.as_view(), name="datanets-api-detail"),
    path(f"{D}stats/", api.DatanetStatsView.as_view(), name="datanets-api-stats"),
    path(f"{D}leaderboard/", api.DatanetLeaderboardView.as_view(), name="datanets-api-leaderboard"),
    path(f"{D}members/", api.MemberListView.as_view(), name="datanets-api-members"),
    path(f"{D}members/<int:user_id>/", api.MemberDetailView.as_view(), name="datanets-api-member"),
    path(f"{D}contributions/", api.ContributionListView.as_view(), name="datanets-api-contributions"),
    path(f"{D}contributions/<int:contribution_id>/", api.ContributionDetailView.as_view(), name="datanets-api-contribution"),
    path(
        f"{D}contributions/<int:contribution_id>/errors/",
        api.ContributionErrorsView.as_view(),
        name="datanets-api-contribution-errors",
    ),
    path(
        f"{D}contributions/<int:contribution_id>/errors.csv",
        api.ContributionErrorsCsvView.as_view(),
        name="datanets-api-contribution-errors-csv",
    ),
    path(f"{D}records/", api.RecordListView.as_view(), name="datanets-api-records"),
    path(f"{D}records/review/", api.RecordReviewView.as_view(), name="datanets-api-records-review"),
    path(f"{D}versions/", api.VersionListView.as_view(), name="datanets-api-versions"),
    path(f"{D}versions/diff/", api.VersionDiffView.as_view(), name="datanets-api-versions-diff"),
    path(f"{D}versions/<int:number>/", api.VersionDetailView.as_view(), name="datanets-api-version"),
    path(f"{D}versions/<int:number>/verify/", api.VersionVerifyView.as_view(), name="datanets-api-version-verify"),
    path(
        f"{D}versions/<int:number>/download/",
        api.VersionDownloadView.as_view(),
        name="datanets-api-version-download",
    ),
    path(f"{D}access-requests/", api.AccessRequestListView.as_view(), name="datanets-api-access-requests"),
    path(
        f"{D}access-requests/<int:request_id>/decide/",
        api.AccessRequestDecideView.as_view(),
        name="datanets-api-access-request-decide",
    ),
]
