"""Rewards REST API: earnings, claims (proofs), the fee policy, and wallet linking by SIWE."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services

TAGS = ["rewards"]


def _money(value):
    if isinstance(value, dict):
        return {k: (str(v) if k in MONEY_KEYS and isinstance(v, int) else _money(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_money(v) for v in value]
    return value


MONEY_KEYS = {"amount", "earned", "accruing", "held", "withheld", "withheld_amount", "pending", "paid_out", "credit",
              "credit_held", "cumulative_amount", "claimed", "claimable", "fee", "protocol", "owner"}


class EarningsView(APIView):
    """Your earnings: totals, per inference (rows, epoch, claim status) and per model. Amounts are
    base-unit integers sent as strings."""

    @extend_schema(tags=TAGS, responses=inline_serializer("Earnings", {"totals": serializers.DictField()}))
    def get(self, request):
        data = selectors.earnings_for(user=request.user)
        for item in data["items"]:
            item["created_at"] = item["created_at"].isoformat()
        return Response(_money(data))


class FeeView(APIView):
    """One inference's fee and its split (for its payer, the model's owner or staff). `status` is
    `pending` while the fee is held and waiting for the next settlement batch (the split shown is the one
    it will be booked with), then `settled`. Amounts are OPEN base units (1 OPEN = 10**18) sent as strings."""

    @extend_schema(tags=TAGS, responses=inline_serializer("Fee", {"status": serializers.CharField(),
                                                                  "fee": serializers.CharField()}))
    def get(self, request, inference_id: str):
        data = selectors.fee_for(inference_id=inference_id, user=request.user)
        if data is None:
            raise NotFound("No fee of yours has this inference id.")
        for key in ("recorded_at", "settled_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return Response(_money(data))


class ClaimsView(APIView):
    """Claimable cumulative amounts with Merkle proofs, ready for the distributor's `claim`. Amounts are OPEN
    base units (1 OPEN = 10**18) sent as strings."""

    @extend_schema(tags=TAGS, responses=inline_serializer("Claims", {"results": serializers.ListField()}))
    def get(self, request):
        return Response({"results": _money(selectors.claims_for(user=request.user))})


class FeePolicyView(APIView):
    """The published fee split (basis points) and its history."""

    public_read = True

    @extend_schema(tags=TAGS, responses=inline_serializer("FeePolicy", {"version": serializers.IntegerField()}))
    def get(self, request):
        return Response(selectors.fee_policy_public())


class WalletNonceSerializer(serializers.Serializer):
    address = serializers.CharField(max_length=42)


class WalletLinkSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=4000)
    signature = serializers.CharField(max_length=200)


class WalletNonceView(APIView):
    """Issue a one-time Sign-In-with-Ethereum message for an address; sign it with personal_sign."""

    required_scopes = {"POST": "contribute"}

    @extend_schema(tags=TAGS, request=WalletNonceSerializer,
                   responses=inline_serializer("WalletNonce", {"nonce": serializers.CharField(),
                                                               "message": serializers.CharField()}))
    def post(self, request):
        data = WalletNonceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.wallet_nonce_issue(user=request.user, address=data.validated_data["address"])
        return Response({"nonce": issued.nonce, "message": issued.message, "expires_at": issued.expires_at.isoformat()},
                        status=201)


class WalletLinkView(APIView):
    """Link the wallet that signed the issued message. A change takes effect after the delay."""

    required_scopes = {"POST": "contribute"}

    @extend_schema(tags=TAGS, request=WalletLinkSerializer,
                   responses=inline_serializer("Wallet", {"address": serializers.CharField()}))
    def post(self, request):
        data = WalletLinkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wallet = services.wallet_link(user=request.user, **data.validated_data)
        return Response({"address": wallet.address, "effective_at": wallet.effective_at.isoformat(),
                         "linked_at": wallet.linked_at.isoformat()}, status=201)
