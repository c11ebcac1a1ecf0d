"""Retrieval REST API: `GET /api/v1/datanets/<slug>/versions/<number>/search/?q=...&k=...&mode=...` searches a
published version of a Documents Datanet (scope `read`; a private Datanet answers 404 to anyone who may not
see it, before anything else is looked at).

A version whose index is still being built answers 409 `index_building`; one whose build failed, 409
`index_failed`; a version of a Datanet of rows, 400 `not_searchable`; an index whose stored files no longer
verify is failed there and then (so nothing is answered from it) and answers 503 `index_unavailable`. Dense and
hybrid searches embed the query on the model server when one is configured: one that is down or refuses the
token answers 503 (`model_server_unavailable`, `model_server_auth`), one too slow 504 (`model_server_timeout`),
any other failure 502 (`model_server_error`), each saying that lexical search works meanwhile."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from datanets import selectors as datanet_selectors
from datanets.api import ERROR_RESPONSE, SLUG, VERSION_NUMBER, DatanetsView
from lineage.api import ApiError

from . import engine, selectors, services
from .errors import IndexCorrupt, IndexNotReady, NotSearchable, QueryEmbeddingUnavailable

TAGS = ["retrieval"]


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=settings.RETRIEVAL_MAX_QUERY_CHARS, help_text="What to search for.")
    k = serializers.IntegerField(min_value=1, max_value=settings.RETRIEVAL_MAX_K, default=10,
                                 help_text="How many passages to return.")
    mode = serializers.ChoiceField(choices=selectors.MODES, default="hybrid",
                                   help_text="hybrid (embeddings and BM25 fused by rank), dense or lexical.")


class PassageResultSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    score = serializers.FloatField(help_text="Fused rank score (hybrid), cosine similarity (dense) or BM25 (lexical).")
    record_id = serializers.IntegerField(help_text="The passage's row in the Datanet.")
    passage_id = serializers.CharField(help_text="The row's stable id in versions and indexes (r<record_id>).")
    text = serializers.CharField()
    document = serializers.CharField(help_text="The document the passage was cut from, as uploaded.")
    anchor = serializers.CharField(help_text="Where in the document: a page (p. 3) or a heading path.")
    page = serializers.CharField(allow_blank=True)
    headings = serializers.CharField(allow_blank=True)
    contributor = serializers.CharField(help_text="The contributor's public name.")
    dense_score = serializers.FloatField(allow_null=True)
    lexical_score = serializers.FloatField(allow_null=True)


SEARCH_RESPONSE = inline_serializer("VersionSearchResult", {
    "datanet": serializers.CharField(), "version": serializers.IntegerField(),
    "index_hash": serializers.CharField(), "query": serializers.CharField(), "mode": serializers.CharField(),
    "k": serializers.IntegerField(), "results": PassageResultSerializer(many=True),
})


class VersionSearchView(DatanetsView):
    @extend_schema(
        tags=TAGS, operation_id="v1_datanets_versions_search",
        summary="Search a published version of a Documents Datanet for the passages that answer a query",
        parameters=[
            SLUG, VERSION_NUMBER,
            OpenApiParameter("q", OpenApiTypes.STR, required=True, description="What to search for."),
            OpenApiParameter("k", OpenApiTypes.INT, description=f"1 to {settings.RETRIEVAL_MAX_K} passages (default 10)."),
            OpenApiParameter("mode", OpenApiTypes.STR, enum=list(selectors.MODES), default="hybrid"),
        ],
        responses={
            200: SEARCH_RESPONSE,
            400: OpenApiResponse(ERROR_RESPONSE, description="A bad query, or a version of a Datanet of rows "
                                                             "(`not_searchable`)."),
            401: OpenApiResponse(ERROR_RESPONSE, description="No or invalid credentials."),
            403: OpenApiResponse(ERROR_RESPONSE, description="The API key lacks the `read` scope."),
            404: OpenApiResponse(ERROR_RESPONSE, description="No such Datanet (or it is private) or version."),
            409: OpenApiResponse(ERROR_RESPONSE, description="The version's index is being built (`index_building`) "
                                                             "or could not be built (`index_failed`)."),
            502: OpenApiResponse(ERROR_RESPONSE, description="The model server failed to embed the query "
                                                             "(`model_server_error`)."),
            503: OpenApiResponse(ERROR_RESPONSE, description="The stored index failed verification "
                                                             "(`index_unavailable`), or the model server that embeds "
                                                             "dense and hybrid queries is down or refuses the token "
                                                             "(`model_server_unavailable`, `model_server_auth`); "
                                                             "mode=lexical still works."),
            504: OpenApiResponse(ERROR_RESPONSE, description="The model server did not embed the query in time "
                                                             "(`model_server_timeout`)."),
        },
    )
    def get(self, request, slug, number):
        version = datanet_selectors.version_get(datanet=self.datanet, number=number)
        try:
            selectors.searchable_index(version=version)
        except NotSearchable as exc:
            raise ApiError(str(exc), code="not_searchable") from exc
        except IndexNotReady as exc:
            raise ApiError(exc.message, code=exc.code, status_code=status.HTTP_409_CONFLICT) from exc
        incoming = SearchQuerySerializer(data=request.query_params)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            results = selectors.version_search(version=version, query=data["q"], k=data["k"], mode=data["mode"])
        except IndexCorrupt as exc:
            services.index_fail_corrupt(index=selectors.index_for(version=version), reason=str(exc))
            raise ApiError(str(exc), code="index_unavailable", status_code=status.HTTP_503_SERVICE_UNAVAILABLE) from exc
        except IndexNotReady as exc:  # it changed state between the two looks
            raise ApiError(exc.message, code=exc.code, status_code=status.HTTP_409_CONFLICT) from exc
        except QueryEmbeddingUnavailable as exc:
            raise ApiError(exc.message, code=exc.code, status_code=exc.status) from exc
        except engine.RetrievalError as exc:
            raise ApiError(exc.message, code=exc.code) from exc
        index = selectors.index_for(version=version)
        return Response({
            "datanet": self.datanet.slug, "version": version.number, "index_hash": index.index_hash,
            "query": data["q"], "mode": data["mode"], "k": data["k"],
            "results": PassageResultSerializer(results, many=True).data,
        })
