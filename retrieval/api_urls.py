"""Retrieval REST API routes; the project includes them under `/api/v1/` (see `lineage/urls.py`)."""

from django.urls import path

from . import api

urlpatterns = [
    path("datanets/<slug:slug>/versions/<int:number>/search/", api.VersionSearchView.as_view(),
         name="datanets-api-version-search"),
]
