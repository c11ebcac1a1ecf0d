from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from rest_framework.response import Response as ApiResponse

from .views import api_not_found_response, is_api_path


class SecurityHeadersMiddleware:
    """Adds the headers Django's SecurityMiddleware does not: a Content-Security-Policy and a
    Permissions-Policy. Swagger UI and Redoc are served from our own static files (sidecar), so
    'self' covers every script the site loads; `worker-src blob:` lets Redoc start its search worker, which it
    builds from a blob: URL (a blob is made by a script of this origin, so it names no other host)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class ApiNotFoundMiddleware:
    """A 404 under /api/ or /v1/ that no API view answered (an unknown address, or a plain Django view's
    Http404) is the API's JSON error, whatever DEBUG says: with DEBUG on, Django answers an unknown address
    with its HTML debug page before `handler404` is consulted. API views' own answers are left alone (DRF's
    browsable API included)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code == 404 and is_api_path(request.path) and not isinstance(response, ApiResponse)
                and not response.get("Content-Type", "").startswith("application/json")):
            return api_not_found_response(request)
        return response


class NulCharacterInQuery(SuspiciousOperation):
    """A query parameter holds a NUL character (0x00): answered 400 by `lineage.views.bad_request`."""


class NulCharacterGuardMiddleware:
    """Refuses a request whose query string holds a NUL character (`%00`), with a 400 that says so.

    PostgreSQL text cannot hold NUL, so such a value reaching a query is a database error, a 500. Form and
    serializer fields already refuse NUL (Django's and DRF's `ProhibitNullCharactersValidator`); query
    parameters that views read directly (search boxes, filters, page numbers) do not pass through them, and
    an API fuzzer found one (`?q=` on the Datanet list). One check here covers every view, page and API alike."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                raise NulCharacterInQuery(f"The query parameter {key.replace(chr(0), '%00')!r} holds a NUL character")
        return self.get_response(request)
