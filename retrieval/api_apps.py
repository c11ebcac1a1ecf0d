"""Retrieval apps REST API (`/api/v1/retrieval-apps/`): deploy, list, read, change and retire the apps that answer
on `/v1/chat/completions` from Documents Datanets. Thin views over `retrieval.services.apps` and
`retrieval.selectors`.

Reads need scope `read` (anonymous reads see the apps over public Datanets), writes scope `train` (an app builds
on Datanets as a fine-tune does, under the same training-access rule). As in the other APIs the app is resolved
before any scope check: an app over a Datanet the caller may not read is 404 to them, whatever they send, as is a
retired app to anyone but its owner; only the owner changes an app (403), and the owner or staff retire it.
Services raise Django's `ValidationError` (400 `invalid`, `fields` naming each problem) and `PermissionDenied`
(403)."""

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from lineage.api import JSONParser, Pagination, error_schema

from . import selectors, services
from .serializers import (
    AppListQuerySerializer,
    RetrievalAppCreateSerializer,
    RetrievalAppSerializer,
    RetrievalAppUpdateSerializer,
)

TAGS = ["retrieval-apps"]
ERROR_RESPONSE, ERRORS = error_schema(
    "RetrievalAppsError", forbidden="Missing API-key scope, or not the app's owner.",
    not_found="No such app that you may see (an app over a private Datanet is 404 to those who may not read it).")
READ_ERRORS = {code: ERRORS[code] for code in (401, 403, 404)}
SLUG = OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The app's slug (its model name).")
PAGE = [OpenApiParameter("page", OpenApiTypes.INT), OpenApiParameter("page_size", OpenApiTypes.INT)]
PAGINATED_APPS = inline_serializer("PaginatedRetrievalAppList", {
    "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True), "results": RetrievalAppSerializer(many=True)})


class RetrievalAppsView(APIView):
    public_read = True
    required_scopes = {"GET": "read", "POST": "train", "PATCH": "train", "DELETE": "train"}
    parser_classes = [JSONParser]  # JSON bodies only, as the other APIs
    app = None

    def check_permissions(self, request):
        # Resolve the app first: one the caller may not see is 404 before any scope or sign-in check.
        if "slug" in self.kwargs:
            self.app = selectors.app_get_visible(slug=self.kwargs["slug"], user=request.user)
        super().check_permissions(request)

    def ser(self, app) -> dict:
        return RetrievalAppSerializer(app, context={"request": self.request}).data


def _versions_named(*, user, refs) -> list[int]:
    """The ids of the versions a request names as {datanet, number}; each one that is not there to the user (no
    such Datanet or version, or a private Datanet they may not read: the two are not told apart) is a problem."""
    ids, problems = [], []
    for n, ref in enumerate(refs, 1):
        version = selectors.version_named(user=user, datanet=ref["datanet"], number=ref["number"])
        if version is None:
            problems.append(f"Item {n}: “{ref['datanet']}” v{ref['number']} does not exist or is not a Datanet you "
                            "may read (GET /api/v1/datanets/ lists them).")
        else:
            ids.append(version.pk)
    if problems:
        raise ValidationError({"versions": problems})
    return ids


class RetrievalAppListView(RetrievalAppsView):
    @extend_schema(
        tags=TAGS, operation_id="v1_retrieval_apps_list",
        summary="Retrieval apps you may ask (every one whose Datanets you may read), and your own",
        parameters=[OpenApiParameter("mine", OpenApiTypes.BOOL, description="Only your own."), *PAGE],
        responses={200: PAGINATED_APPS, **ERRORS},
    )
    def get(self, request):
        query = AppListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if query.validated_data["mine"] and not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Sign in or send an API key to list your own apps.")
        apps = (selectors.apps_of(owner=request.user) if query.validated_data["mine"]
                else selectors.apps_listed_for(user=request.user))
        paginator = Pagination()
        page = paginator.paginate_queryset(apps.select_related("owner", "causal_model").order_by("slug"), request,
                                           view=self)
        context = {"request": request, "versions_by_app": selectors.app_versions_by_app(apps={a.pk for a in page})}
        return paginator.get_paginated_response(RetrievalAppSerializer(page, many=True, context=context).data)

    @extend_schema(
        tags=TAGS, summary="Deploy a retrieval app (scope: train)",
        description="The same checks as the deploy page: versions of Documents Datanets you may read and build on, "
        "one per Datanet, each with a ready search index; an optional causal model of your own, deployed. It "
        "answers at once on /v1/chat/completions under its `slug`; an app over a private Datanet answers only "
        "those who may read every Datanet behind it. Each problem is named in `fields`; a field not listed here "
        "is refused, never ignored.",
        request=RetrievalAppCreateSerializer, responses={201: RetrievalAppSerializer, **ERRORS},
    )
    def post(self, request):
        incoming = RetrievalAppCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        app = services.app_deploy(
            owner=request.user, name=data["name"], versions=_versions_named(user=request.user, refs=data["versions"]),
            causal_model=data["causal_model"] or None, price_per_inference=data["price_per_inference"],
            passages=data["passages"], description=data["description"])
        body = self.ser(app)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class RetrievalAppDetailView(RetrievalAppsView):
    @extend_schema(tags=TAGS, summary="A retrieval app: its versions, answering model, passages per answer and price",
                   parameters=[SLUG], responses={200: RetrievalAppSerializer, **READ_ERRORS})
    def get(self, request, slug):
        return Response(self.ser(self.app))

    @extend_schema(
        tags=TAGS, summary="Change the price, passages per answer, description or deployed flag (owner; scope: train)",
        description="`price_per_inference` is in OPEN base units (1 OPEN = 10**18), as a string of digits. "
        "`deployed: false` retires the app; `deployed: true` deploys a retired one again once its versions and "
        "model still pass the deploy checks (400 naming each problem otherwise). Any other field is refused.",
        parameters=[SLUG], request=RetrievalAppUpdateSerializer, responses={200: RetrievalAppSerializer, **ERRORS},
    )
    def patch(self, request, slug):
        if self.app.owner_id != request.user.pk:  # say "not yours" before "bad input"
            raise exceptions.PermissionDenied("Only the app's owner changes it.")
        incoming = RetrievalAppUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        app = services.app_update(app=self.app, actor=request.user, **incoming.validated_data)
        return Response(self.ser(app))

    @extend_schema(
        tags=TAGS, summary="Retire the app: it stops answering (owner or staff; scope: train)",
        description="Answers 200 with the retired app, which its owner can still read and deploy again (PATCH "
        "`deployed: true`); its receipts and fees stay. Retiring a retired app changes nothing.",
        parameters=[SLUG], request=None, responses={200: RetrievalAppSerializer, **ERRORS},
    )
    def delete(self, request, slug):
        return Response(self.ser(services.app_retire(app=self.app, actor=request.user)))
