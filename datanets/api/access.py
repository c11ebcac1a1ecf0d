"""Training-access requests: ask the owner, list, and the owner's decision."""

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import selectors, services
from ..serializers import (
    AccessDecideSerializer,
    AccessRequestCreateSerializer,
    AccessRequestSerializer,
)
from .base import (
    ERRORS,
    READ_ERRORS,
    SLUG,
    TAGS,
    SignedInView,
)


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
