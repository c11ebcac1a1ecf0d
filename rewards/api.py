"""Rewards REST API: earnings, claims (proofs), the fee policy, and wallet linking by SIWE."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from lineage.api import Pagination

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


BASE_UNITS_HELP = "OPEN base units (1 OPEN = 10**18) as a string of digits."


def _amount(**kwargs):
    return serializers.CharField(help_text=BASE_UNITS_HELP, **kwargs)


class EarningItemSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The share's id: stable, so a client paging while new earnings arrive "
                                            "can tell a row it already has.")
    inference_id = serializers.CharField()
    model_version_hash = serializers.CharField()
    receipt_id = serializers.CharField(allow_null=True, allow_blank=True)
    role = serializers.ChoiceField(choices=["contributor", "owner"])
    ppm = serializers.IntegerField(help_text="The contributor's share of the contributors' part, parts per million.")
    amount = _amount()
    amount_open = serializers.CharField(help_text="The same amount in OPEN, exact.")
    rows = serializers.JSONField(help_text="The receipt's top row ids for this contributor.")
    created_at = serializers.DateTimeField()
    epoch = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(help_text="accruing, held for review, withheld after review, "
                                             "epoch <n>: publishing, claimable or paid.")


class EarningsHoldSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    model_version_hash = serializers.CharField()
    reason = serializers.CharField()
    rows = serializers.JSONField()
    row_count = serializers.IntegerField()
    harm = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_note = serializers.CharField(allow_blank=True)
    withheld_amount = _amount()
    withheld_amount_open = serializers.CharField()


class ModelAmountSerializer(serializers.Serializer):
    model_version_hash = serializers.CharField()
    amount = _amount()
    amount_open = serializers.CharField()


EARNINGS_PAGE = inline_serializer("PaginatedEarnings", {
    "count": serializers.IntegerField(help_text="Shares of fees in all (every page)."),
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": EarningItemSerializer(many=True, help_text="This page's shares, newest first."),
    "totals": serializers.DictField(child=_amount(), help_text="earned, accruing, held, withheld, pending, paid_out, "
                                                              "credit, credit_held: over all pages."),
    "totals_open": serializers.DictField(child=serializers.CharField(), help_text="The totals in OPEN, exact."),
    "holds": EarningsHoldSerializer(many=True, help_text="Open harm holds: earnings held for review."),
    "withheld_holds": EarningsHoldSerializer(many=True, help_text="Confirmed holds (latest 50)."),
    "by_model": ModelAmountSerializer(many=True, help_text="Earned as a contributor, per model."),
    "owner_revenue": ModelAmountSerializer(many=True, help_text="Earned as a model's owner, per model."),
})


class EarningsView(APIView):
    """Your earnings, one page of shares at a time (`page`, `page_size` up to 500; 50 by default), newest first,
    as every list of the API is paginated; each page also carries the totals, holds and per-model sums over all
    of them. Amounts are base-unit integers sent as strings."""

    @extend_schema(tags=TAGS, operation_id="v1_rewards_earnings_list",
                   parameters=[OpenApiParameter("page", OpenApiTypes.INT),
                               OpenApiParameter("page_size", OpenApiTypes.INT)],
                   responses=EARNINGS_PAGE)
    def get(self, request):
        summary = selectors.earnings_for(user=request.user, limit=0)
        summary.pop("items")
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.earning_shares(user=request.user), request, view=self)
        items = selectors.earning_items(page, user=request.user)
        for item in items:
            item["created_at"] = item["created_at"].isoformat()
        response = paginator.get_paginated_response(_money(items))
        response.data.update(_money(summary))
        return response


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
