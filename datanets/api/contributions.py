"""Contributions: upload a file or JSON rows (202, validated in the background), poll one, read or
download its row errors."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from lineage.api import JSONParser
from lineage.csv_export import csv_chunks

from .. import selectors, services
from ..models import ContributionSource, TaskType
from ..serializers import (
    ContributionRowsSerializer,
    ContributionSerializer,
    RowErrorSerializer,
)
from .base import (
    CONTRIBUTION_ID,
    ERRORS,
    READ_ERRORS,
    SLUG,
    TAGS,
    SignedInView,
    paginated_schema,
)


def _csv_cell_stream(header, rows):
    """CSV as byte chunks, every cell formula-neutralised (the site's one CSV writer, lineage.csv_export)."""
    return csv_chunks(header, rows)


class ContributionListView(SignedInView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        tags=TAGS, operation_id="v1_datanets_contributions_list",
        summary="Your contributions (curators: all of this Datanet's)", parameters=[SLUG],
        responses={200: paginated_schema(ContributionSerializer, "PaginatedContributionList"), **READ_ERRORS},
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
        responses={200: paginated_schema(RowErrorSerializer, "PaginatedRowErrorList"), **READ_ERRORS},
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
