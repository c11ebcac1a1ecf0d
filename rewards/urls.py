from django.urls import path

from . import views

app_name = "rewards"
urlpatterns = [
    path("", views.index, name="index"),
    path("claim/", views.claim, name="claim"),
    path("deposit/", views.deposit, name="deposit"),
    path("wallet/", views.wallet, name="wallet"),
    path("fees/", views.fees, name="fees"),
    path("earnings.csv", views.earnings_csv, name="earnings_csv"),
    path("receipts.csv", views.receipts_csv, name="receipts_csv"),
    path("admin/", views.admin_overview, name="admin"),
]
