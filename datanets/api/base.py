"""What every Datanets API view shares: the base views (the Datanet resolved before any scope check, so a
private Datanet answers 404 to outsiders), the error shapes and path parameters of the OpenAPI schema, and
the paginated-list schema."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from lineage.api import JSONParser, Pagination, error_schema

from .. import selectors

TAGS = ["datanets"]
ERROR_RESPONSE, ERRORS = error_schema(
    "DatanetsError", forbidden="Missing API-key scope or not allowed for this role.",
    not_found="No such Datanet (or it is private), or no such object.")
READ_ERRORS = {code: ERRORS[code] for code in (401, 403, 404)}
SLUG = OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The Datanet's slug.")
CONTRIBUTION_ID = OpenApiParameter("contribution_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="Contribution id.")
VERSION_NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="Version number.")


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


def paginated_schema(serializer_class, name):
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
