"""API conventions shared by every app: the error shape and pagination.

Every error is `{"code": <stable machine code>, "detail": <sentence for a person>, "fields": {...}}`
so clients can branch on `code` and show `detail`; `fields` maps a field name to its messages.
"""

import io

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, parsers, status
from rest_framework.pagination import PageNumberPagination

from datanets.ingest.readers import json_text_depth_exceeds

# No API request body needs more nesting than this (a Datanet row is at most 16 levels deep).
API_MAX_JSON_DEPTH = 64


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        """A `page_size` that is not a whole number from 1 up is refused (DRF would silently use the
        default, and the client would page through different results than it asked for)."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"Give a whole number from 1 to {self.max_page_size}."]})
        return min(size, self.max_page_size)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with two bounds checked before parsing: the body's size (Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE, which DRF's stream reading does not apply) and its nesting depth
    (`json` recurses once per level: a body of a million brackets is a RecursionError, a 500, or where
    the recursion limit was raised a crashed process). Both are a 400 `parse_error`."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit else stream.read()
        if limit and len(raw) > limit:
            raise exceptions.ParseError(f"The JSON body is larger than {limit // (1024 * 1024)} MB.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - the body is not {encoding} text ({exc}).") from exc
        if json_text_depth_exceeds(text, API_MAX_JSON_DEPTH):
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {API_MAX_JSON_DEPTH} levels.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


class ApiError(exceptions.APIException):
    """Raise from services or views for a domain error with its own stable code."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, detail, *, code=None, status_code=None, fields=None):
        super().__init__(detail=detail, code=code or self.default_code)
        if status_code:
            self.status_code = status_code
        self.fields = fields or {}


def _flatten_fields(data):
    if isinstance(data, dict):
        return {key: [str(m) for m in (value if isinstance(value, list) else [value])] for key, value in data.items()}
    return {}


def error_body(*, code, detail, fields=None):
    return {"code": code, "detail": detail, "fields": fields or {}}


def _from_django_validation_error(exc: DjangoValidationError) -> ApiError:
    """Services raise Django's ValidationError; its field messages become `fields`, and `detail` repeats
    them as one sentence so a client that shows only `detail` still tells the person what to fix."""
    fields = _flatten_fields(exc.message_dict) if hasattr(exc, "error_dict") else {}
    non_field = fields.pop(NON_FIELD_ERRORS, [])
    messages = non_field + [m for ms in fields.values() for m in ms] if fields or non_field else exc.messages
    return ApiError(" ".join(messages), code="invalid", fields=fields)


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, DjangoValidationError):
        exc = _from_django_validation_error(exc)
    # Imported here, not at module level: `rest_framework.views` reads DEFAULT_PARSER_CLASSES (which names
    # this module's JSONParser) while defining APIView, so a module-level import made DRF settings that
    # resolve this module first fail on a half-imported module (it depended on the order checks ran in).
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        non_field = fields.pop("non_field_errors", None)
        if isinstance(exc.detail, list):
            non_field = [str(m) for m in exc.detail]
        detail = " ".join(non_field) if non_field else "Some fields are not valid: see `fields`."
        response.data = error_body(code="invalid", detail=detail, fields=fields)
    else:
        codes = exc.get_codes() if hasattr(exc, "get_codes") else "error"
        code = codes if isinstance(codes, str) else "error"
        response.data = error_body(code=code, detail=str(exc.detail), fields=getattr(exc, "fields", None))
    return response


def json_error(*, status_code, code, detail):
    """Plain-Django JSON error for API paths outside DRF (404/500 handlers, the OpenAI routes)."""
    return JsonResponse(error_body(code=code, detail=detail), status=status_code)


# --- OpenAPI: the errors every operation can answer ------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every Lineage API error: a stable machine `code`, a sentence for a person, and per-field messages.",
    "properties": {
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["code", "detail", "fields"],
}
OPENAI_ERROR_SCHEMA = {
    "type": "object",
    "description": "OpenAI's error shape, as the official clients expect.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
            "required": ["message", "type"],
        }
    },
    "required": ["error"],
}
STANDARD_ERRORS = {
    "400": "Invalid input; `fields` names each problem.",
    "401": "No credentials, or an API key that is not valid or has been revoked.",
    "403": "The API key lacks the scope needed here, or this role may not do this.",
    "404": "No such object (a private Datanet is 404 to non-members), or no such page of results.",
    "429": "Too many requests for this API key or address; retry after the `Retry-After` seconds.",
}
OPENAI_ERRORS = {**STANDARD_ERRORS, "502": "The model server answered with an error.",
                 "503": "The model server is unavailable or has not loaded this model yet."}


def document_standard_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the errors any request can meet
    (bad input, no or bad credentials, missing scope, not found or a bad page number, throttled) in the
    error shape its routes answer with, unless the view already declared that status."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    schemas.setdefault("OpenAIError", OPENAI_ERROR_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        openai = path.startswith("/v1/")
        component, errors = ("OpenAIError", OPENAI_ERRORS) if openai else ("Error", STANDARD_ERRORS)
        for method, operation in operations.items():
            if method not in ("get", "put", "patch", "post", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for status_code, description in errors.items():
                responses.setdefault(status_code, {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                })
    return result


def error_schema(name: str, *, forbidden: str, not_found: str):
    """The API's error body (`code`, `detail`, `fields`) as the OpenAPI component `name`, and the usual
    400/401/403/404 responses with it (`forbidden` and `not_found` say what those mean for the resource)."""
    from drf_spectacular.utils import OpenApiResponse, inline_serializer
    from rest_framework import serializers

    body = inline_serializer(name, {
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    })
    return body, {
        400: OpenApiResponse(body, description="Invalid input; `fields` names each problem."),
        401: OpenApiResponse(body, description="No or invalid credentials."),
        403: OpenApiResponse(body, description=forbidden),
        404: OpenApiResponse(body, description=not_found),
    }
