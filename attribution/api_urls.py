"""Attribution REST API routes; the project includes them under `/api/v1/`."""

from django.urls import path

from . import api

urlpatterns = [
    path("attributions/", api.AttributionCreateView.as_view(), name="attribution-api-create"),
    path("attributions/<str:receipt_id>/", api.AttributionDetailView.as_view(), name="attribution-api-detail"),
]
