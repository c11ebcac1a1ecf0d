"""Published versions: publish, read, verify, diff and download."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import selectors, services
from ..serializers import (
    DiffQuerySerializer,
    DownloadQuerySerializer,
    PublishSerializer,
    VerifySerializer,
    VersionDetailSerializer,
    VersionSerializer,
)
from .base import (
    ERRORS,
    READ_ERRORS,
    SLUG,
    TAGS,
    VERSION_NUMBER,
    DatanetsView,
    IgnoreFormatNegotiation,
    paginated_schema,
)


class VersionListView(DatanetsView):
    @extend_schema(
        tags=TAGS, operation_id="v1_datanets_versions_list",
        summary="Published versions, newest first", parameters=[SLUG],
        responses={200: paginated_schema(VersionSerializer, "PaginatedVersionList"), **READ_ERRORS},
    )
    def get(self, request, slug):
        return self.paginated(selectors.versions_for(datanet=self.datanet).select_related("datanet"), VersionSerializer)

    @extend_schema(
        tags=TAGS, summary="Publish the accepted rows as a new immutable version (curators; scope: contribute)",
        parameters=[SLUG], request=PublishSerializer, responses={201: VersionDetailSerializer, **ERRORS},
    )
    def post(self, request, slug):
        if not self.perms.can_curate:
            raise exceptions.PermissionDenied("Only this Datanet's curators and owner publish versions.")
        incoming = PublishSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        version = services.version_publish(datanet=self.datanet, actor=request.user, notes=incoming.validated_data["notes"]
        )
        return Response(self.ser(VersionDetailSerializer, version), status=status.HTTP_201_CREATED)


class VersionDetailView(DatanetsView):
    @extend_schema(
        tags=TAGS, summary="A version with its manifest", parameters=[SLUG, VERSION_NUMBER],
        responses={200: VersionDetailSerializer, **READ_ERRORS},
    )
    def get(self, request, slug, number):
        version = selectors.version_get(datanet=self.datanet, number=number)
        return Response(self.ser(VersionDetailSerializer, version))


class VersionVerifyView(DatanetsView):
    @extend_schema(
        tags=TAGS, summary="Re-hash a version's files against its manifest", parameters=[SLUG, VERSION_NUMBER],
        responses={200: VerifySerializer, **READ_ERRORS},
    )
    def get(self, request, slug, number):
        version = selectors.version_get(datanet=self.datanet, number=number)
        result = services.version_verify(version=version, actor=request.user)
        return Response(VerifySerializer(_verify_result(result)).data)


def _verify_result(result):
    """Accept a dict or an object with `ok`/`problems` from the service."""
    if isinstance(result, dict):
        return {"ok": bool(result.get("ok")), "problems": [str(p) for p in result.get("problems", [])]}
    return {"ok": bool(result.ok), "problems": [str(p) for p in result.problems]}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return _jsonable(asdict(value))
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class VersionDiffView(DatanetsView):
    @extend_schema(
        tags=TAGS, summary="What changed between two versions",
        parameters=[
            SLUG,
            OpenApiParameter("from", OpenApiTypes.INT, required=True, description="The older version number."),
            OpenApiParameter("to", OpenApiTypes.INT, required=True, description="The newer version number."),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The service's diff."), **ERRORS},
    )
    def get(self, request, slug):
        incoming = DiffQuerySerializer(data=request.query_params)
        incoming.is_valid(raise_exception=True)
        a = selectors.version_get(datanet=self.datanet, number=incoming.validated_data["from"])
        b = selectors.version_get(datanet=self.datanet, number=incoming.validated_data["to"])
        diff = services.version_diff(a=a, b=b)
        return Response({"from": a.number, "to": b.number, **_jsonable(diff)} if isinstance(diff, dict)
                        else {"from": a.number, "to": b.number, "diff": _jsonable(diff)})


DOWNLOAD_DESCRIPTION = "The version's rows as CSV, JSON Lines or Parquet, as `format` asks."


class VersionDownloadView(DatanetsView):
    content_negotiation_class = IgnoreFormatNegotiation

    @extend_schema(
        tags=TAGS, summary="Download a version's rows (streamed) when you may train on this Datanet",
        parameters=[
            SLUG, VERSION_NUMBER,
            OpenApiParameter("format", OpenApiTypes.STR, enum=["csv", "jsonl", "parquet"], default="csv"),
        ],
        # One media type per export format (`services.EXPORT_TYPES`), so clients know what each answer is.
        responses={
            **{(200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description=DOWNLOAD_DESCRIPTION)
               for media_type in ("text/csv", "application/x-ndjson", "application/vnd.apache.parquet")},
            **ERRORS,
        },
    )
    def get(self, request, slug, number):
        version = selectors.version_get(datanet=self.datanet, number=number)
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Sign in or send an API key to download a version.")
        if not self.perms.can_download:
            raise exceptions.PermissionDenied(
                "Downloading needs training access to this Datanet: request it from the owner."
            )
        incoming = DownloadQuerySerializer(data=request.query_params)
        incoming.is_valid(raise_exception=True)
        content_type, filename, chunks = services.version_export(version=version, fmt=incoming.validated_data["format"]
        )
        response = StreamingHttpResponse(chunks, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
