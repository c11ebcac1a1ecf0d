from django.urls import path

from . import views

app_name = "attribution"
urlpatterns = [
    path("", views.index, name="index"),
    path("receipts/<str:receipt_id>/", views.receipt, name="receipt"),
    path("models/<slug:slug>/valuation/", views.valuation, name="valuation"),
]
