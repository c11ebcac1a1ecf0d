"""Attribution REST API: `POST /api/v1/attributions/` (scope `infer`) attributes one answer and returns its
receipt; `GET /api/v1/attributions/<receipt_id>/` (scope `read`) returns a stored receipt.

Receipts made here belong to no inference (`inference_id` null): inference ids are assigned by the platform
and their receipts are made when a model answers, so a request that names one is refused (400).

The input and output are returned only to whoever asked, the model's owner and staff; everything else
in a receipt (rows, contributors, shares, hashes) is readable by anyone holding its id."""

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from lineage.api import ApiError, error_schema
from models_registry import selectors as model_selectors

from . import selectors, services
from .models import AttributionReceipt

TAGS = ["attribution"]
ERROR_RESPONSE, _ = error_schema("AttributionError", forbidden="", not_found="")


class AttributionRequestSerializer(serializers.Serializer):
    model = serializers.SlugField(help_text="The model version's slug (its `model` name).")
    input = serializers.CharField(max_length=20_000, trim_whitespace=False)
    output = serializers.CharField(required=False, allow_blank=False, max_length=20_000, trim_whitespace=False,
                                   help_text="The answer to attribute; omitted: the model answers first.")

    def validate(self, attrs):
        # Receipts made here are never tied to an inference: a caller-chosen id would let anyone attach a
        # receipt (and so the split of its fee) to someone else's inference before it is settled.
        if "inference_id" in self.initial_data:
            raise serializers.ValidationError({"inference_id": [
                "Inference ids are assigned by the platform when a model answers through /v1; an inference's "
                "receipt is made when it is served. Leave inference_id out."]})
        return attrs


class RowSerializer(serializers.Serializer):
    row_id = serializers.CharField()
    contributor_id = serializers.CharField()
    score = serializers.FloatField()


class ReceiptSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_version.slug")
    url = serializers.SerializerMethodField()
    top_rows = RowSerializer(many=True)
    input = serializers.SerializerMethodField()
    output = serializers.SerializerMethodField()
    contributor_names = serializers.SerializerMethodField(
        help_text="{contributor id: public name}: the name the receipt page and the playground show.")

    class Meta:
        model = AttributionReceipt
        fields = ["receipt_id", "url", "model", "model_version_hash", "index_hash", "method", "inference_id",
                  "input", "output", "query_digest", "top_rows", "contributor_scores", "contributor_shares_ppm",
                  "contributor_rows", "contributor_names", "negative_influence", "empty_reason", "receipt_digest",
                  "latency_ms", "created_at"]

    def _shows_query(self, receipt) -> bool:
        return selectors.receipt_shows_query(receipt=receipt, user=self.context["request"].user)

    def get_url(self, receipt) -> str:
        return self.context["request"].build_absolute_uri(receipt.get_absolute_url())

    def get_input(self, receipt) -> str | None:
        return receipt.input_text if self._shows_query(receipt) else None

    def get_output(self, receipt) -> str | None:
        return receipt.output if self._shows_query(receipt) else None

    def get_contributor_names(self, receipt) -> dict[str, str]:
        return selectors.receipt_contributor_names(receipt=receipt)


class AttributionCreateView(APIView):
    required_scopes = {"POST": "infer"}

    @extend_schema(tags=TAGS, request=AttributionRequestSerializer, responses={
        201: ReceiptSerializer, 400: OpenApiResponse(ERROR_RESPONSE), 404: OpenApiResponse(ERROR_RESPONSE),
        402: OpenApiResponse(ERROR_RESPONSE, description="The credit does not cover the model's price: an attribution "
                                                         "is charged like an answer and its fee pays the rows it names."),
        409: OpenApiResponse(ERROR_RESPONSE, description="The model's attribution index is not ready."),
        503: OpenApiResponse(ERROR_RESPONSE, description="The index failed verification."),
    }, summary="Attribute an answer to training rows and contributors (charged like an answer)")
    def post(self, request):
        data = AttributionRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = model_selectors.model_version_get_visible(slug=data.validated_data["model"], user=request.user)
        text = data.validated_data["input"]
        try:
            output = data.validated_data.get("output")
            if output is None:
                output = services.model_output(model_version=version, input_text=text)
            receipt = services.receipt_create_paid(model_version=version, input_text=text, output=output,
                                                   requester=request.user)
        except services.ProbeUnpaid as exc:
            raise ApiError(f"{exc} An attribution costs what an answer of this model costs "
                           f"({version.price_per_inference} base units); deposit OPEN or ask an admin for a grant.",
                           code="insufficient_credit", status_code=status.HTTP_402_PAYMENT_REQUIRED) from exc
        except services.IndexCorrupt as exc:
            raise ApiError(str(exc), code="index_corrupt", status_code=status.HTTP_503_SERVICE_UNAVAILABLE) from exc
        except services.IndexNotReady as exc:
            raise ApiError(str(exc), code="index_not_ready", status_code=status.HTTP_409_CONFLICT) from exc
        return Response(ReceiptSerializer(receipt, context={"request": request}).data, status=status.HTTP_201_CREATED)


class AttributionDetailView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(tags=TAGS, responses={
        200: ReceiptSerializer, 404: OpenApiResponse(ERROR_RESPONSE),
        202: OpenApiResponse(ERROR_RESPONSE, description="The answer was given and its receipt id reserved; the "
                                                         "attribution worker has not stored the receipt yet (code "
                                                         "`receipt_pending`). Retry after `Retry-After` seconds.")},
        summary="A stored attribution receipt")
    def get(self, request, receipt_id: str):
        try:
            receipt = selectors.receipt_get(receipt_id=receipt_id)
        except Http404:
            from lineage import hooks

            # A queued answer carries its receipt id at once; the attribution worker stores it seconds later.
            if not any(awaited(receipt_id=receipt_id) is not None for awaited in hooks.receipt_awaited.callbacks()):
                raise
            return Response({"code": "receipt_pending", "fields": {},
                             "detail": "The answer was given and this receipt is being computed; ask again shortly."},
                            status=status.HTTP_202_ACCEPTED, headers={"Retry-After": "2"})
        return Response(ReceiptSerializer(receipt, context={"request": request}).data)
