from django.conf import settings
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
