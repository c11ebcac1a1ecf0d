"""API conventions shared by every app: the error shape and pagination.

Every error is `{"code": <stable machine code>, "detail": <sentence for a person>, "fields": {...}}`
so clients can branch on `code` and show `detail`; `fields` maps a field name to its messages.
"""

from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


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
