"""Native REST API: `POST /api/v1/inferences/` classifies a text with a deployed classification model
and returns its label, the probability of every label and the attribution receipt; `GET
/api/v1/inferences/` lists the caller's own inference records. Errors use the Lineage API shape
(`{"code", "detail", "fields"}`); needs the `infer` scope."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from accounts.models import ApiKey
from lineage.api import ApiError

from . import answering, selectors, services
from .errors import OpenAIError
from .models import InferenceRecord


class ClassifyInputSerializer(serializers.Serializer):
    model = serializers.SlugField(max_length=100, help_text="Slug of a deployed classification model version.")
    input = serializers.CharField(max_length=32_000, trim_whitespace=False)


class ClassificationSerializer(serializers.Serializer):
    inference_id = serializers.CharField()
    model = serializers.CharField()
    label = serializers.CharField()
    probabilities = serializers.DictField(child=serializers.FloatField())
    lineage = serializers.DictField()


class InferenceRecordSerializer(serializers.ModelSerializer):
    fee = serializers.CharField(help_text="OPEN base units charged (1 OPEN = 10^18), as a string.")
    status = serializers.CharField(help_text="running, succeeded, failed or cancelled")

    class Meta:
        model = InferenceRecord
        fields = ["id", "created_at", "finished_at", "endpoint", "model_slug", "model_version_hash", "adapter",
                  "adapter_slot", "stream", "tokens_in", "tokens_out", "latency_ms", "fee", "receipt_id", "status",
                  "error_code", "error"]


class InferenceViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    required_scopes = {"create": "infer", "list": "infer"}
    serializer_class = InferenceRecordSerializer

    def get_queryset(self):
        return selectors.inference_records_for(user=self.request.user)

    @extend_schema(request=ClassifyInputSerializer, responses={201: ClassificationSerializer})
    def create(self, request):
        data = ClassifyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model, text = data.validated_data["model"], data.validated_data["input"]
        try:
            if not text.strip():
                raise OpenAIError("'input' must be a non-empty string.", param="input", code="invalid_value")
            inference = services.inference_begin(
                user=request.user, api_key=request.auth if isinstance(request.auth, ApiKey) else None,
                endpoint="inferences", model=model, task="classification")
            answer, settled = answering.run(inference, answering.Prompt(text, text))
        except OpenAIError as exc:
            if exc.code == "insufficient_quota":  # OpenAI's 429; this API keeps 402 Payment Required
                raise ApiError(exc.message, code="insufficient_credit", status_code=402) from exc
            raise ApiError(exc.message, code=exc.code or exc.type, status_code=exc.status,
                           fields={exc.param: [exc.message]} if exc.param else None) from exc
        lineage = settled.as_dict()
        lineage["receipt_url"] = services.receipt_url_absolute(settled.receipt_url, request)
        body = {"inference_id": settled.inference_id, "model": model, "label": answer.classification["label"],
                "probabilities": answer.classification["probabilities"], "lineage": lineage}
        return Response(ClassificationSerializer(body).data, status=status.HTTP_201_CREATED)
