"""ModelFactory REST API (`/api/v1/fine-tunes/`, `/api/v1/models/`, `/api/v1/base-models/`): thin views over
`models_registry.services` and `models_registry.selectors`.

Reads need scope `read`, writes scope `train`. As in the Datanets API, the object is resolved before any
scope check: a fine-tune is its owner's alone, and so is a model version that is not deployed, so anyone
else gets 404 whatever they send; a deployed model is public to read, and only its owner changes it (403).
Services raise Django's `ValidationError` (400 `invalid` with `fields`) and `PermissionDenied` (403); a job
or model in the wrong state for the action is 409 with its own `code`.
"""

import base64
import hashlib
import io

from django.core.exceptions import ValidationError
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from lineage.api import ApiError, JSONParser, Pagination, error_schema

from . import selectors, services
from .forms import FineTuneForm
from .models import JobState
from .serializers import (
    BaseModelSerializer,
    FineTuneCreateSerializer,
    FineTuneJobSerializer,
    JobListQuerySerializer,
    ModelListQuerySerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    ModelVersionUpdateSerializer,
)

JOB_TAGS, MODEL_TAGS = ["fine-tunes"], ["models"]
ERROR_RESPONSE, ERRORS = error_schema(
    "ModelFactoryError", forbidden="Missing API-key scope, or not the owner.",
    not_found="No such fine-tune or model that you can see.")
READ_ERRORS = {code: ERRORS[code] for code in (401, 403, 404)}
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The fine-tune's id.")
SLUG = OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The model version's slug.")
PAGE = [OpenApiParameter("page", OpenApiTypes.INT), OpenApiParameter("page_size", OpenApiTypes.INT)]


def _conflict(description):
    return {409: OpenApiResponse(ERROR_RESPONSE, description=description)}


def _paginated_schema(serializer_class, name):
    return inline_serializer(name, {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": serializer_class(many=True),
    })


class ModelFactoryView(APIView):
    required_scopes = {"GET": "read", "POST": "train", "PATCH": "train"}
    parser_classes = [JSONParser]  # JSON bodies only, as the Datanets API

    def paginated(self, queryset, serializer_class):
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True, context={"request": self.request}).data)

    def ser(self, serializer_class, instance):
        return serializer_class(instance, context={"request": self.request}).data


class FineTuneView(ModelFactoryView):
    """A fine-tune is its owner's alone: anyone else's answer is 404, before scopes are looked at."""

    job = None

    def check_permissions(self, request):
        if "job_id" in self.kwargs and request.user.is_authenticated:
            self.job = selectors.job_get_for(user=request.user, pk=self.kwargs["job_id"])
        super().check_permissions(request)


class ModelVersionView(ModelFactoryView):
    """Deployed models are public to read; one that is not deployed is 404 to all but its owner."""

    public_read = True
    version = None

    def check_permissions(self, request):
        if "slug" in self.kwargs:
            self.version = selectors.model_version_get_visible(slug=self.kwargs["slug"], user=request.user)
        super().check_permissions(request)


# --- Base models -------------------------------------------------------------------------------------

class BaseModelListView(ModelVersionView):
    @extend_schema(tags=MODEL_TAGS, operation_id="v1_base_models_list", parameters=PAGE,
                   summary="The base models offered for fine-tuning, with the Datanet tasks each trains",
                   responses={200: _paginated_schema(BaseModelSerializer, "PaginatedBaseModelList"), **READ_ERRORS})
    def get(self, request):
        return self.paginated(selectors.base_models().order_by("name", "pk"), BaseModelSerializer)


# --- Fine-tunes --------------------------------------------------------------------------------------

def _validated_fine_tune(*, user, request_data: dict) -> dict:
    """The browser form's cleaned data for an API request: the request names its base and Datanet
    versions by slug and number, which are resolved against the form's own choices (the offered bases,
    the versions this user may train on), and the form then validates everything as it does on the page.
    Raises `ValidationError` with a message per problem."""
    form_data = {}
    form = FineTuneForm(form_data, user=user)  # bound to `form_data`, filled in below before it is validated
    problems = {}
    bases = form.fields["base_model"].queryset
    base = bases.filter(slug=request_data["base_model"]).first()
    if base is None:
        offered = ", ".join(f"{b.slug} ({', '.join(b.task_types)})" for b in bases.order_by("slug")) or "none"
        problems["base_model"] = [f"No base model “{request_data['base_model']}” is offered. Offered: {offered}."]
    trainable = set(form.fields["datanet_versions"].queryset.values_list("pk", flat=True))
    versions = []
    for ref in request_data["datanet_versions"]:
        version, problem = selectors.datanet_version_for_training(
            user=user, datanet_slug=ref["datanet"], number=ref["number"])
        if version is not None and version.pk not in trainable:
            problem = (f"You may not train on “{version.datanet.name}” v{version.number}: ask its owner for training "
                       f"access (POST /api/v1/datanets/{version.datanet.slug}/access-requests/, scope train).")
        if problem:
            problems.setdefault("datanet_versions", []).append(problem)
        else:
            versions.append(version.pk)
    if problems:
        raise ValidationError(problems)
    hyperparameters = {k: v for k, v in request_data.items() if k not in ("base_model", "datanet_versions")}
    hyperparameters["lora_target_modules"] = ",".join(hyperparameters.get("lora_target_modules", []))
    form_data.update({key: value for key, value in hyperparameters.items() if value is not None},
                     base_model=base.pk, datanet_versions=versions)
    if not form.is_valid():
        raise ValidationError(form.errors.as_data())
    return dict(form.cleaned_data)


class FineTuneListView(FineTuneView):
    @extend_schema(
        tags=JOB_TAGS, operation_id="v1_fine_tunes_list", summary="Your fine-tunes, newest first",
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=["", *JobState.values]), *PAGE],
        responses={200: _paginated_schema(FineTuneJobSerializer, "PaginatedFineTuneJobList"), **ERRORS},
    )
    def get(self, request):
        query = JobListQuerySerializer(data={k: v for k, v in request.query_params.items() if v != ""})
        query.is_valid(raise_exception=True)
        jobs = selectors.jobs_for(user=request.user, state=query.validated_data.get("state", ""))
        return self.paginated(jobs.order_by("-created_at", "-id"), FineTuneJobSerializer)

    @extend_schema(
        tags=JOB_TAGS, summary="Launch a fine-tune (scope: train)",
        description="The same spec and the same checks as the page's form: Datanet versions you may train on, "
        "one version per Datanet, a base model that trains their task. Settings left out take the form's "
        "defaults; `learning_rate`, `epochs` and `batch_size` left out (or null) are scaled to the data. "
        "Answers 201 at once with the queued job; poll its `url` for progress. A field not listed here is "
        "refused (400, each unknown field named in `fields` and the accepted ones in `detail`), never ignored.",
        request=FineTuneCreateSerializer, responses={201: FineTuneJobSerializer, **ERRORS},
    )
    def post(self, request):
        incoming = FineTuneCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = _validated_fine_tune(user=request.user, request_data=dict(incoming.validated_data))
        job = services.fine_tune_create(owner=request.user, name=data.pop("name"), base_model=data.pop("base_model"),
                                        datanet_versions=data.pop("datanet_versions"), **data)
        body = self.ser(FineTuneJobSerializer, job)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class FineTuneDetailView(FineTuneView):
    @extend_schema(tags=JOB_TAGS, summary="A fine-tune: state, progress, step and epoch, loss curve, log, error",
                   parameters=[JOB_ID], responses={200: FineTuneJobSerializer, **READ_ERRORS})
    def get(self, request, job_id):
        return Response(self.ser(FineTuneJobSerializer, self.job))


class FineTuneCancelView(FineTuneView):
    @extend_schema(
        tags=JOB_TAGS, summary="Cancel a queued or running fine-tune (scope: train)",
        description="A queued job is cancelled at once; a running one stops at its next step and keeps its "
        "checkpoint (`cancel_requested` is true until then), so it can be resumed.",
        parameters=[JOB_ID], request=None,
        responses={200: FineTuneJobSerializer, **ERRORS, **_conflict("The job has already finished.")},
    )
    def post(self, request, job_id):
        if not self.job.is_active:
            raise ApiError(f"This fine-tune is {self.job.get_state_display().lower()}; only a queued or running one "
                           "can be cancelled.", code="not_cancellable", status_code=status.HTTP_409_CONFLICT)
        job = services.fine_tune_cancel(job=self.job, actor=request.user)
        return Response(self.ser(FineTuneJobSerializer, job))


class FineTuneResumeView(FineTuneView):
    @extend_schema(
        tags=JOB_TAGS, summary="Resume a cancelled or failed fine-tune from its checkpoint (scope: train)",
        description="Queues the job again (202); it continues from its last checkpoint, or from the start when "
        "none was written. Training access to its Datanets is checked again.",
        parameters=[JOB_ID], request=None,
        responses={202: FineTuneJobSerializer, **ERRORS, **_conflict("The job is queued, running or succeeded.")},
    )
    def post(self, request, job_id):
        if self.job.state not in services.RESUMABLE_STATES:
            raise ApiError(f"This fine-tune is {self.job.get_state_display().lower()}; only a cancelled or failed one "
                           "can be resumed.", code="not_resumable", status_code=status.HTTP_409_CONFLICT)
        job = services.fine_tune_resume(job=self.job, actor=request.user)
        return Response(self.ser(FineTuneJobSerializer, job), status=status.HTTP_202_ACCEPTED)


# --- Model versions ----------------------------------------------------------------------------------

class ModelVersionListView(ModelVersionView):
    @extend_schema(
        tags=MODEL_TAGS, operation_id="v1_model_versions_list",
        summary="Model versions you can see: every deployed one, and your own",
        parameters=[OpenApiParameter("mine", OpenApiTypes.BOOL, description="Only your own."), *PAGE],
        responses={200: _paginated_schema(ModelVersionSerializer, "PaginatedModelVersionList"), **ERRORS},
    )
    def get(self, request):
        query = ModelListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        versions = selectors.model_versions_visible_to(user=request.user, mine=query.validated_data["mine"])
        return self.paginated(versions.order_by("-created_at", "-id"), ModelVersionSerializer)


class ModelVersionDetailView(ModelVersionView):
    @extend_schema(tags=MODEL_TAGS, summary="A model version: its card, metrics and lineage (the Datanet "
                   "versions that trained it)", parameters=[SLUG], responses={200: ModelVersionDetailSerializer,
                                                                              **READ_ERRORS})
    def get(self, request, slug):
        return Response(self.ser(ModelVersionDetailSerializer, self.version))

    @extend_schema(
        tags=MODEL_TAGS, summary="Set the price per answer, downloads or description (owner; scope: train)",
        description="`price_per_inference` is in OPEN base units (1 OPEN = 10**18), as a string of digits. "
        "Any other field is refused (400, named in `fields`, with the accepted ones in `detail`).",
        parameters=[SLUG], request=ModelVersionUpdateSerializer, responses={200: ModelVersionDetailSerializer, **ERRORS},
    )
    def patch(self, request, slug):
        if self.version.owner_id != request.user.pk:  # say "not yours" before "bad input"
            raise exceptions.PermissionDenied("Only the model's owner changes it.")
        incoming = ModelVersionUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        version = services.model_version_update(version=self.version, actor=request.user, **incoming.validated_data)
        return Response(self.ser(ModelVersionDetailSerializer, version))


class _AnyAccept(DefaultContentNegotiation):
    """The adapter is a zip whatever the client accepts; errors are still JSON (the first renderer)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


DIGEST_HEADERS = [
    OpenApiParameter("Repr-Digest", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                     description="RFC 9530 digest of the zip: `sha-256=:<base64>:`."),
    OpenApiParameter("X-Content-SHA256", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                     description="SHA-256 of the zip, hex."),
    OpenApiParameter("X-Model-Version-Hash", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                     description="The model version's hash (its manifest inside the zip hashes to it)."),
]


class ModelVersionAdapterView(ModelVersionView):
    content_negotiation_class = _AnyAccept

    @extend_schema(
        tags=MODEL_TAGS, operation_id="v1_model_versions_adapter",
        summary="Download the peft adapter (zip, streamed): owner, or anyone when the owner allows downloads",
        description="A standard peft directory (adapter, tokenizer, manifest): extracted, it loads with "
        "`PeftModel.from_pretrained(base, directory)`. The same model gives the same bytes.",
        parameters=[SLUG, *DIGEST_HEADERS],
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY), **READ_ERRORS},
    )
    def get(self, request, slug):
        data = services.model_version_adapter_zip(version=self.version, user=request.user)
        digest = hashlib.sha256(data)
        response = FileResponse(io.BytesIO(data), as_attachment=True, filename=f"{slug}-adapter.zip",
                                content_type="application/zip")
        response["Repr-Digest"] = f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
        response["X-Content-SHA256"] = digest.hexdigest()
        response["X-Model-Version-Hash"] = self.version.version_hash
        response["ETag"] = f'"{digest.hexdigest()}"'
        return response


class _DeploymentView(ModelVersionView):
    deployed = True

    def post(self, request, slug):
        try:
            version = services.model_version_set_deployed(version=self.version, actor=request.user,
                                                          deployed=self.deployed)
        except ValidationError as exc:  # the only refusal: a paid model whose attribution index is not ready
            raise ApiError(" ".join(exc.messages), code="index_not_ready", status_code=status.HTTP_409_CONFLICT) from exc
        return Response(self.ser(ModelVersionDetailSerializer, version))


class ModelVersionDeployView(_DeploymentView):
    @extend_schema(
        tags=MODEL_TAGS, summary="Deploy: the model answers on /v1 and in the playground (owner or staff; scope: train)",
        parameters=[SLUG], request=None,
        responses={200: ModelVersionDetailSerializer, **ERRORS,
                   **_conflict("A paid model waits for its attribution index (or set its price to 0).")},
    )
    def post(self, request, slug):
        return super().post(request, slug)


class ModelVersionUndeployView(_DeploymentView):
    deployed = False

    @extend_schema(tags=MODEL_TAGS, summary="Undeploy: the model stops answering (owner or staff; scope: train)",
                   parameters=[SLUG], request=None, responses={200: ModelVersionDetailSerializer, **ERRORS})
    def post(self, request, slug):
        return super().post(request, slug)
