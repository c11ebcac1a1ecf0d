"""A Datanet's members and their roles (the owner manages them)."""

from django.contrib.auth import get_user_model
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from .. import services
from ..serializers import (
    MemberSerializer,
    MemberSetSerializer,
)
from .base import (
    ERRORS,
    READ_ERRORS,
    SLUG,
    TAGS,
    DatanetsView,
)


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
