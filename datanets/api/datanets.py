"""Datanets themselves: list and search, create, read and change settings, stats and leaderboard."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import selectors, services
from ..serializers import (
    DatanetCreateSerializer,
    DatanetSerializer,
    DatanetStatsSerializer,
    DatanetUpdateSerializer,
    LeaderboardEntrySerializer,
)
from .base import (
    ERRORS,
    READ_ERRORS,
    SLUG,
    TAGS,
    DatanetsView,
    paginated_schema,
)


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
        responses={200: paginated_schema(DatanetSerializer, "PaginatedDatanetList"), **READ_ERRORS},
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
