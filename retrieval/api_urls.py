"""Retrieval REST API routes; the project includes them under `/api/v1/` (see `lineage/urls.py`)."""

from django.urls import path

from . import api, api_apps

urlpatterns = [
    path("datanets/<slug:slug>/versions/<int:number>/search/", api.VersionSearchView.as_view(),
         name="datanets-api-version-search"),
    path("retrieval-apps/", api_apps.RetrievalAppListView.as_view(), name="retrieval-apps-api-list"),
    path("retrieval-apps/<slug:slug>/", api_apps.RetrievalAppDetailView.as_view(), name="retrieval-apps-api-detail"),
]
