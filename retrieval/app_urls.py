"""Retrieval app pages; the project includes them under `/retrieval-apps/`."""

from django.urls import path

from . import app_views

app_name = "retrieval_apps"
urlpatterns = [
    path("", app_views.apps_index, name="index"),
    path("new/", app_views.app_create, name="create"),
    path("receipts/<str:receipt_id>/", app_views.receipt, name="receipt"),
    path("<slug:slug>/", app_views.app_detail, name="detail"),
    path("<slug:slug>/retire/", app_views.app_retire, name="retire"),
]
