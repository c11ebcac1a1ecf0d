"""Insights REST API (`/api/v1/insights/...`): public, read-only, from the summary tables only.

Every view takes `range` (`<n>d`, `<n>w` or `all`; default 90d), `bucket` (`day` or `week`; default
by range) and `synthetic` (`include`, the default, or `exclude` generated demo history). A bad value
answers 400 `invalid_range` / `invalid_parameter` with `fields` naming the parameter.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lineage.api import ApiError

from . import selectors
from .serializers import (
    DatanetDashboardSerializer,
    EpochListSerializer,
    ModelDashboardSerializer,
    OverviewSerializer,
    RetentionBothSerializer,
    TopEarnersSerializer,
)

TAGS = ["insights"]
ERROR_RESPONSE = inline_serializer("InsightsError", {
    "code": serializers.CharField(),
    "detail": serializers.CharField(),
    "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
})
BAD_PARAMETER = OpenApiResponse(ERROR_RESPONSE, description="A bad `range`, `bucket` or `synthetic` value: `code` is "
                                                          "`invalid_range` or `invalid_parameter` and `fields` names it.")
NOT_FOUND = OpenApiResponse(ERROR_RESPONSE, description="No such Datanet or model, or you may not see it.")
RANGE = OpenApiParameter("range", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                         description="How far back: `<n>d` or `<n>w` (up to 3660 days), or `all`. Default `90d`.")
BUCKET = OpenApiParameter("bucket", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False, enum=["", "day", "week"],
                          description="Points per day or per ISO week. Default (or blank, as an empty form field "
                                      "sends): day up to 120 days, week beyond.")
SYNTHETIC = OpenApiParameter("synthetic", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                             enum=["", "include", "exclude"],
                             description="`exclude` drops generated demo history; default (or blank) `include`, "
                                         "flagged.")
WINDOW_PARAMETERS = [RANGE, BUCKET, SYNTHETIC]
SLUG = OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH)


def include_synthetic(request) -> bool:
    value = (request.query_params.get("synthetic") or "include").strip().lower()
    if value not in ("include", "exclude"):
        message = f"'{value[:40]}' is not a choice: use include or exclude."
        raise ApiError(message, code="invalid_parameter", fields={"synthetic": [message]})
    return value == "include"


def window_from(request) -> selectors.Window:
    try:
        return selectors.window_parse(range_value=request.query_params.get("range"),
                                      bucket=request.query_params.get("bucket"))
    except selectors.InvalidWindow as exc:
        raise ApiError(exc.message, code="invalid_range", fields={exc.field: [exc.message]}) from exc


class InsightsView(APIView):
    public_read = True


class OverviewView(InsightsView):
    @extend_schema(tags=TAGS, parameters=WINDOW_PARAMETERS, responses={200: OverviewSerializer, 400: BAD_PARAMETER},
                   summary="Platform dashboard: every chart, and Datanets and models ranked for drill-down")
    def get(self, request):
        synthetic = include_synthetic(request)
        return Response(selectors.overview(user=request.user, window=window_from(request), include_synthetic=synthetic))


class DatanetInsightsView(InsightsView):
    @extend_schema(tags=TAGS, parameters=[SLUG, *WINDOW_PARAMETERS],
                   responses={200: DatanetDashboardSerializer, 400: BAD_PARAMETER, 404: NOT_FOUND},
                   summary="One Datanet's contribution velocity, contributors and acceptance rate")
    def get(self, request, slug: str):
        synthetic = include_synthetic(request)
        return Response(selectors.datanet_dashboard(slug=slug, user=request.user, window=window_from(request),
                                                    include_synthetic=synthetic))


class ModelInsightsView(InsightsView):
    @extend_schema(tags=TAGS, parameters=[SLUG, *WINDOW_PARAMETERS],
                   responses={200: ModelDashboardSerializer, 400: BAD_PARAMETER, 404: NOT_FOUND},
                   summary="One model version's requests, tokens, fees, latency and fee split")
    def get(self, request, slug: str):
        synthetic = include_synthetic(request)
        return Response(selectors.model_dashboard(slug=slug, user=request.user, window=window_from(request),
                                                  include_synthetic=synthetic))


class RetentionView(InsightsView):
    @extend_schema(tags=TAGS, parameters=[SYNTHETIC], responses={200: RetentionBothSerializer, 400: BAD_PARAMETER},
                   summary="Weekly cohorts of contributors and of API users: share active n weeks later")
    def get(self, request):
        synthetic = include_synthetic(request)
        return Response({kind: selectors.retention(kind=kind, include_synthetic=synthetic)
                         for kind in ("contributors", "api_users")})


class EpochsView(InsightsView):
    @extend_schema(tags=TAGS, parameters=[SYNTHETIC], responses={200: EpochListSerializer, 400: BAD_PARAMETER},
                   summary="OPEN accrued, funded and claimed per payout epoch")
    def get(self, request):
        return Response({"results": selectors.epochs(include_synthetic=include_synthetic(request))})


class TopEarnersView(InsightsView):
    @extend_schema(tags=TAGS, parameters=WINDOW_PARAMETERS, responses={200: TopEarnersSerializer, 400: BAD_PARAMETER},
                   summary="Contributors who earned the most OPEN in the window")
    def get(self, request):
        synthetic = include_synthetic(request)
        window = window_from(request)
        return Response({"window": window.as_dict(),
                         "results": selectors.top_earners(window=window, include_synthetic=synthetic, limit=20)})
