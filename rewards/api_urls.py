"""Rewards REST API routes under `/api/v1/`."""

from django.urls import path

from . import api

urlpatterns = [
    path("rewards/earnings/", api.EarningsView.as_view(), name="rewards-api-earnings"),
    path("rewards/claims/", api.ClaimsView.as_view(), name="rewards-api-claims"),
    path("rewards/fees/<str:inference_id>/", api.FeeView.as_view(), name="rewards-api-fee"),
    path("rewards/fee-policy/", api.FeePolicyView.as_view(), name="rewards-api-fee-policy"),
    path("rewards/wallet/nonce/", api.WalletNonceView.as_view(), name="rewards-api-wallet-nonce"),
    path("rewards/wallet/link/", api.WalletLinkView.as_view(), name="rewards-api-wallet-link"),
]
