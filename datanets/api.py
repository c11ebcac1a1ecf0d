"""Datanets REST API (`/api/v1/datanets/...`): thin views over `datanets.services` and `datanets.selectors`.

Every view below a Datanet resolves it through `selectors.datanet_get_visible` *before* checking scopes,
so a private Datanet answers 404 to anyone who may not see it, whatever they send. Services raise
Django's `ValidationError` (→ 400 `invalid` with `fields`) and `PermissionDenied` (→ 403).
"""


from django.contrib.auth import get_user_model
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from lineage.api import JSONParser, Pagination
from lineage.csv_export import csv_chunks

from . import selectors, services
from .models import ContributionSource, RecordStatus, TaskType
from .serializers import (
    AccessDecideSerializer,
    AccessRequestCreateSerializer,
    AccessRequestSerializer,
    ContributionRowsSerializer,
    ContributionSerializer,
    DatanetCreateSerializer,
    DatanetSerializer,
    DatanetStatsSerializer,
    DatanetUpdateSerializer,
    DiffQuerySerializer,
    DownloadQuerySerializer,
    LeaderboardEntrySerializer,
    MemberSerializer,
    MemberSetSerializer,
    PublishSerializer,
    RecordSerializer,
    ReviewResultSerializer,
    ReviewSerializer,
    RowErrorSerializer,
    VerifySerializer,
    VersionDetailSerializer,
    VersionSerializer,
)

TAGS = ["datanets"]
ERROR_RESPONSE = inline_serializer(
    "DatanetsError",
    {
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    },
)
ERRORS = {
    400: OpenApiResponse(ERROR_RESPONSE, description="Invalid input; `fields` names each problem."),
    401: OpenApiResponse(ERROR_RESPONSE, description="No or invalid credentials."),
    403: OpenApiResponse(ERROR_RESPONSE, description="Missing API-key scope or not allowed for this role."),
    404: OpenApiResponse(ERROR_RESPONSE, description="No such Datanet (or it is private), or no such object."),
}
READ_ERRORS = {code: ERRORS[code] for code in (401, 403, 404)}
SLUG = OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The Datanet's slug.")
CONTRIBUTION_ID = OpenApiParameter("contribution_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="Contribution id.")
VERSION_NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="Version number.")


# --- Helpers -----------------------------------------------------------------------------------------

def _csv_cell_stream(header, rows):
    """CSV as byte chunks, every cell formula-neutralised (the site's one CSV writer, lineage.csv_export)."""
    return csv_chunks(header, rows)


class IgnoreFormatNegotiation(DefaultContentNegotiation):
    """`?format=` names the export format on download views, not a DRF renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DatanetsView(APIView):
    """Reads are public for public Datanets (scope `read` with an API key); writes need scope `contribute`.
    A private Datanet answers 404 to anyone who is not a member."""

    public_read = True
    required_scopes = {"GET": "read", "POST": "contribute", "PATCH": "contribute", "DELETE": "contribute"}
    # JSON bodies only (file uploads add multipart where they take one): a form-encoded blank would
    # silently mean "use the default" to DRF, where the documented JSON body says "invalid".
    parser_classes = [JSONParser]
    datanet = None

    def check_permissions(self, request):
        # Resolve the Datanet first: private ones are 404 for outsiders, before any scope or sign-in check.
        if "slug" in self.kwargs:
            self.datanet = selectors.datanet_get_visible(slug=self.kwargs["slug"], user=request.user)
        super().check_permissions(request)

    @property
    def perms(self):
        if not hasattr(self, "_perms"):
            self._perms = selectors.datanet_permissions(datanet=self.datanet, user=self.request.user)
        return self._perms

    def paginated(self, queryset, serializer_class):
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        data = serializer_class(page, many=True, context={"request": self.request}).data
        return paginator.get_paginated_response(data)

    def ser(self, serializer_class, instance, **kwargs):
        return serializer_class(instance, context={"request": self.request}, **kwargs).data


class SignedInView(DatanetsView):
    """Needs a signed-in user or an API key (no anonymous reads). A private Datanet answers 404 to non-members."""

    public_read = False


def _paginated_schema(serializer_class, name):
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


# --- Datanets ----------------------------------------------------------------------------------------

class DatanetListView(DatanetsView):
    @extend_schema(
        tags=TAGS,
        operation_id="v1_datanets_list",
        summary="List and search the Datanets you can see",
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, description="Text in the name, summary or slug."),
            OpenApiParameter("task_type", OpenApiTypes.STR, description="text-classification, instruction, text or documents."),
            OpenApiParameter("tag", OpenApiTypes.STR, description="One tag."),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT),
        ],
        responses={200: _paginated_schema(DatanetSerializer, "PaginatedDatanetList"), **READ_ERRORS},
    )
    def get(self, request):
        params = request.query_params
        datanets = selectors.datanet_search(
            user=request.user, query=params.get("q", "").strip(), task_type=params.get("task_type", "").strip(),
            tag=params.get("tag", "").strip(),
        )
        return self.paginated(datanets, DatanetSerializer)

    @extend_schema(
        tags=TAGS,
        summary="Create a Datanet (scope: contribute); you become its owner",
        request=DatanetCreateSerializer,
        responses={201: DatanetSerializer, **ERRORS},
    )
    def post(self, request):
        incoming = DatanetCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        datanet = services.datanet_create(owner=request.user, **data)
        return Response(self.ser(DatanetSerializer, datanet), status=status.HTTP_201_CREATED)


class DatanetDetailView(DatanetsView):
    @extend_schema(tags=TAGS, summary="A Datanet", parameters=[SLUG], responses={200: DatanetSerializer, **READ_ERRORS})
    def get(self, request, slug):
        return Response(self.ser(DatanetSerializer, self.datanet))

    @extend_schema(
        tags=TAGS,
        summary="Change a Datanet's settings (owner; scope: contribute)",
        parameters=[SLUG],
        request=DatanetUpdateSerializer,
        responses={200: DatanetSerializer, **ERRORS},
    )
    def patch(self, request, slug):
        incoming = DatanetUpdateSerializer(data=request.data)
        if not self.perms.can_manage:  # say "not yours" before "bad input"
            raise exceptions.PermissionDenied("Only the owner changes a Datanet's settings.")
        incoming.is_valid(raise_exception=True)
        datanet = services.datanet_update(datanet=self.datanet, actor=request.user, **incoming.validated_data)
        return Response(self.ser(DatanetSerializer, datanet))


class DatanetStatsView(DatanetsView):
    @extend_schema(
        tags=TAGS, summary="Row counts, duplicates caught, label distribution", parameters=[SLUG],
        responses={200: DatanetStatsSerializer, **READ_ERRORS},
    )
    def get(self, request, slug):
        return Response(DatanetStatsSerializer(selectors.datanet_stats(datanet=self.datanet)).data)


class DatanetLeaderboardView(DatanetsView):
    @extend_schema(
        tags=TAGS, summary="Contributors ranked by accepted rows", parameters=[SLUG],
        responses={200: LeaderboardEntrySerializer(many=True), **READ_ERRORS},
    )
    def get(self, request, slug):
        return Response(LeaderboardEntrySerializer(selectors.leaderboard(datanet=self.datanet), many=True).data)


# --- Members -----------------------------------------------------------------------------------------

def _members_of(datanet):
    # Read-only; a `memberships_for(datanet=)` selector would be the natural home for this query.
    return datanet.memberships.select_related("user").order_by("created_at", "id")


def _user_by(*, user_id=None, username=None):
    users = get_user_model().objects.filter(is_active=True)
    user = users.filter(pk=user_id).first() if user_id else users.filter(username=username).first()
    if user is None:
        raise exceptions.ValidationError({"user_id" if user_id else "username": "No such user."})
    return user


class MemberListView(DatanetsView):
    @extend_schema(
        tags=TAGS, summary="Members and their roles", parameters=[SLUG],
        responses={200: MemberSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request, slug):
        return Response(self.ser(MemberSerializer, _members_of(self.datanet), many=True))

    @extend_schema(
        tags=TAGS, summary="Add a member or change their role (owner; scope: contribute)", parameters=[SLUG],
        request=MemberSetSerializer, responses={200: MemberSerializer, **ERRORS},
    )
    def post(self, request, slug):
        if not self.perms.can_manage:
            raise exceptions.PermissionDenied("Only the owner manages members.")
        incoming = MemberSetSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        user = _user_by(user_id=incoming.validated_data.get("user_id"), username=incoming.validated_data.get("username"))
        membership = services.membership_set(datanet=self.datanet, actor=request.user, user=user,
            role=incoming.validated_data["role"],
        )
        return Response(self.ser(MemberSerializer, membership))


class MemberDetailView(DatanetsView):
    @extend_schema(
        tags=TAGS, summary="Remove a member (owner; scope: contribute)",
        parameters=[SLUG, OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=None, responses={204: None, **ERRORS},
    )
    def delete(self, request, slug, user_id):
        if not self.perms.can_manage:
            raise exceptions.PermissionDenied("Only the owner manages members.")
        membership = _members_of(self.datanet).filter(user_id=user_id).first()
        if membership is None:
            raise Http404("No such member.")
        if membership.user_id == self.datanet.owner_id:
            raise exceptions.ValidationError({"user_id": "The owner cannot be removed from their own Datanet."})
        services.membership_remove(datanet=self.datanet, actor=request.user, user=membership.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Contributions -----------------------------------------------------------------------------------

class ContributionListView(SignedInView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        tags=TAGS, operation_id="v1_datanets_contributions_list",
        summary="Your contributions (curators: all of this Datanet's)", parameters=[SLUG],
        responses={200: _paginated_schema(ContributionSerializer, "PaginatedContributionList"), **READ_ERRORS},
    )
    def get(self, request, slug):
        # `contributions_for_user` is the caller's own; curators read the Datanet's whole history.
        if self.perms.can_curate:
            queryset = self.datanet.contributions.select_related("contributor", "datanet").order_by("-created_at", "-id")
        else:
            queryset = selectors.contributions_for_user(user=request.user, datanet=self.datanet).select_related(
                "contributor"
            ).order_by("-created_at", "-id")
        return self.paginated(queryset, ContributionSerializer)

    @extend_schema(
        tags=TAGS,
        summary="Contribute rows: a file (multipart `file`) or JSON `{\"rows\": [...]}` (scope: contribute)",
        description="Answers 202 at once; validation runs in the background. Poll `status_url` until `state` is "
        "`in_review`, `done` or `failed`, then read per-row problems at `errors_url`. A Documents Datanet takes "
        "documents (.txt, .md, .html, .pdf, .docx, optionally .gz, or a .zip of them): repeat the `file` part for "
        "several; each is split into passages, and a document that cannot be read is one error row.",
        parameters=[SLUG],
        request={
            "application/json": inline_serializer(
                "ContributionRowsRequest", {"rows": serializers.ListField(child=serializers.DictField())}
            ),
            "multipart/form-data": inline_serializer("ContributionFileRequest", {"file": serializers.FileField()}),
        },
        responses={202: ContributionSerializer, **ERRORS},
    )
    def post(self, request, slug):
        incoming = ContributionRowsSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        if "file" in incoming.validated_data and self.datanet.task_type == TaskType.DOCUMENTS:
            # Documents: every `file` part of the request (one contribution, split into passages).
            contribution = services.contribution_create_from_documents(datanet=self.datanet, contributor=request.user,
                uploaded_files=request.FILES.getlist("file"), source=ContributionSource.API_FILE,
            )
        elif "file" in incoming.validated_data:
            contribution = services.contribution_create_from_file(datanet=self.datanet, contributor=request.user,
                uploaded_file=incoming.validated_data["file"], source=ContributionSource.API_FILE,
            )
        else:
            contribution = services.contribution_create_from_rows(datanet=self.datanet, contributor=request.user,
                rows=incoming.validated_data["rows"], source=ContributionSource.API_ROWS,
            )
        body = self.ser(ContributionSerializer, contribution)
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})


class ContributionDetailView(SignedInView):
    @extend_schema(
        tags=TAGS, summary="A contribution's status: state, progress, counts, error, notes",
        parameters=[SLUG, CONTRIBUTION_ID], responses={200: ContributionSerializer, **READ_ERRORS},
    )
    def get(self, request, slug, contribution_id):
        contribution = selectors.contribution_get_for(datanet=self.datanet, pk=contribution_id, user=request.user)
        return Response(self.ser(ContributionSerializer, contribution))


class ContributionErrorsView(SignedInView):
    @extend_schema(
        tags=TAGS, operation_id="v1_datanets_contributions_errors_list",
        summary="Rows that were not accepted into review, with line numbers and reasons",
        parameters=[SLUG, CONTRIBUTION_ID, OpenApiParameter("page", OpenApiTypes.INT),
                    OpenApiParameter("page_size", OpenApiTypes.INT)],
        responses={200: _paginated_schema(RowErrorSerializer, "PaginatedRowErrorList"), **READ_ERRORS},
    )
    def get(self, request, slug, contribution_id):
        contribution = selectors.contribution_get_for(datanet=self.datanet, pk=contribution_id, user=request.user)
        return self.paginated(contribution.row_errors.order_by("row_number", "id"), RowErrorSerializer)


class ContributionErrorsCsvView(SignedInView):
    @extend_schema(
        tags=TAGS, operation_id="v1_datanets_contributions_errors_csv",
        summary="Download the row errors as CSV, with each rejected row's content (formula cells neutralised)",
        parameters=[SLUG, CONTRIBUTION_ID],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY), **READ_ERRORS},
    )
    def get(self, request, slug, contribution_id):
        contribution = selectors.contribution_get_for(datanet=self.datanet, pk=contribution_id, user=request.user)
        header, rows = selectors.contribution_error_table(contribution=contribution)
        response = StreamingHttpResponse(_csv_cell_stream(header, rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="contribution-{contribution.pk}-errors.csv"'
        return response


# --- Records and review ------------------------------------------------------------------------------

class RecordListView(DatanetsView):
    @extend_schema(
        tags=TAGS,
        operation_id="v1_datanets_records_list",
        summary="Rows: the review queue for curators, accepted rows for everyone else",
        description="Curators filter by `status` (default `pending`; `all` for every status), `flag`, "
        "`contributor`, `label` and `q`. Everyone else sees accepted rows only (`status` other than "
        "`accepted` gives an empty page).",
        parameters=[
            SLUG,
            # Blank means "not given" (an HTML filter form sends blanks), as the view reads it.
            OpenApiParameter("status", OpenApiTypes.STR, enum=["", "pending", "accepted", "rejected", "all"]),
            OpenApiParameter("flag", OpenApiTypes.STR, enum=["", "near_duplicate", "mislabeled", "label_conflict"]),
            OpenApiParameter("contributor", OpenApiTypes.STR, description="A username."),
            OpenApiParameter("label", OpenApiTypes.STR),
            OpenApiParameter("q", OpenApiTypes.STR, description="Text anywhere in the row's fields."),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT),
        ],
        responses={200: _paginated_schema(RecordSerializer, "PaginatedRecordList"), **ERRORS},
    )
    def get(self, request, slug):
        params = request.query_params
        flag = params.get("flag", "").strip()
        if flag not in ("", "near_duplicate", "mislabeled", "label_conflict"):
            raise exceptions.ValidationError({"flag": "Use near_duplicate, mislabeled or label_conflict."})
        row_status = params.get("status", "").strip()
        if row_status not in ("", "all", *RecordStatus.values):
            raise exceptions.ValidationError({"status": "Use pending, accepted, rejected or all."})
        contributor, label = params.get("contributor", "").strip(), params.get("label", "").strip()
        query = params.get("q", "").strip()
        if self.perms.can_curate:
            queryset = selectors.review_queue(
                datanet=self.datanet, status="" if row_status == "all" else (row_status or RecordStatus.PENDING),
                flag=flag, contributor=contributor, label=label, query=query,
            )
        else:
            queryset = selectors.rows_for_viewer(datanet=self.datanet, query=query, user=None)
            if row_status not in ("", "all", RecordStatus.ACCEPTED) or flag in ("mislabeled", "label_conflict"):
                queryset = queryset.none()
            if flag == "near_duplicate":
                queryset = queryset.filter(near_duplicate_of__isnull=False)
            if contributor:
                queryset = queryset.filter(contributor__username=contributor)
            if label:
                queryset = queryset.filter(label=label)
        return self.paginated(queryset, RecordSerializer)


class RecordReviewView(DatanetsView):
    @extend_schema(
        tags=TAGS,
        summary="Accept or reject rows by id or by filter (curators; scope: contribute)",
        parameters=[SLUG], request=ReviewSerializer, responses={200: ReviewResultSerializer, **ERRORS},
    )
    def post(self, request, slug):
        if not self.perms.can_curate:
            raise exceptions.PermissionDenied("Only this Datanet's curators and owner review rows.")
        incoming = ReviewSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        if "filter" in data:
            chosen = data["filter"]
            record_ids = list(
                selectors.review_queue(
                    datanet=self.datanet, status=chosen["status"], flag=chosen["flag"],
                    contributor=chosen["contributor"], label=chosen["label"], query=chosen["q"],
                ).values_list("id", flat=True)
            )
        else:
            record_ids = data["record_ids"]
        changed = services.records_review(datanet=self.datanet, reviewer=request.user, record_ids=record_ids,
            decision=data["decision"], reason=data["reason"],
        )
        return Response({"changed": changed})


# --- Versions ----------------------------------------------------------------------------------------

class VersionListView(DatanetsView):
    @extend_schema(
        tags=TAGS, operation_id="v1_datanets_versions_list",
        summary="Published versions, newest first", parameters=[SLUG],
        responses={200: _paginated_schema(VersionSerializer, "PaginatedVersionList"), **READ_ERRORS},
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


# --- Training access ---------------------------------------------------------------------------------

class AccessRequestListView(SignedInView):
    required_scopes = {"GET": "read", "POST": "train"}

    @extend_schema(
        tags=TAGS, summary="Training-access requests (owner: all; others: their own)", parameters=[SLUG],
        responses={200: AccessRequestSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request, slug):
        requests = selectors.training_access_requests_for(datanet=self.datanet).select_related("datanet", "decided_by")
        if not self.perms.can_manage:
            requests = requests.filter(requester=request.user)
        return Response(self.ser(AccessRequestSerializer, requests, many=True))

    @extend_schema(
        tags=TAGS, summary="Ask the owner for training access (scope: train)", parameters=[SLUG],
        request=AccessRequestCreateSerializer, responses={201: AccessRequestSerializer, **ERRORS},
    )
    def post(self, request, slug):
        incoming = AccessRequestCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        access_request = services.access_request_create(datanet=self.datanet, requester=request.user,
            message=incoming.validated_data["message"],
        )
        return Response(self.ser(AccessRequestSerializer, access_request), status=status.HTTP_201_CREATED)


class AccessRequestDecideView(SignedInView):
    @extend_schema(
        tags=TAGS, summary="Approve or refuse a training-access request (owner; scope: contribute)",
        parameters=[SLUG, OpenApiParameter("request_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=AccessDecideSerializer, responses={200: AccessRequestSerializer, **ERRORS},
    )
    def post(self, request, slug, request_id):
        if not self.perms.can_manage:
            raise exceptions.PermissionDenied("Only the owner decides on training access.")
        access_request = selectors.training_access_requests_for(datanet=self.datanet).filter(pk=request_id).first()
        if access_request is None:
            raise Http404("No such access request.")
        incoming = AccessDecideSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        decided = services.access_request_decide(access_request=access_request, actor=request.user,
            approve=incoming.validated_data["approve"],
        )
        return Response(self.ser(AccessRequestSerializer, decided))
