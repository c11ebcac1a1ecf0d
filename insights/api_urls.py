"""Insights REST API routes; the project includes them under `/api/v1/`."""

from django.urls import path

from . import api

urlpatterns = [
    path("insights/", api.OverviewView.as_view(), name="insights-api-overview"),
    path("insights/datanets/<slug:slug>/", api.DatanetInsightsView.as_view(), name="insights-api-datanet"),
    path("insights/models/<slug:slug>/", api.ModelInsightsView.as_view(), name="insights-api-model"),
    path("insights/retention/", api.RetentionView.as_view(), name="insights-api-retention"),
    path("insights/epochs/", api.EpochsView.as_view(), name="insights-api-epochs"),
    path("insights/top-earners/", api.TopEarnersView.as_view(), name="insights-api-top-earners"),
]
