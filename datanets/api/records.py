"""Rows: the curators' review queue (everyone else: accepted rows) and review decisions."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from .. import selectors, services
from ..models import RecordStatus
from ..serializers import (
    RecordSerializer,
    ReviewResultSerializer,
    ReviewSerializer,
)
from .base import (
    ERRORS,
    SLUG,
    TAGS,
    DatanetsView,
    paginated_schema,
)


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
        responses={200: paginated_schema(RecordSerializer, "PaginatedRecordList"), **ERRORS},
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
