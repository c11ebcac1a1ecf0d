import time
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.cache import never_cache

from .api import json_error


def home(request):
    return render(request, "home.html")


def _timed(check):
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a health check reports every failure instead of raising it
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 2), "detail": detail}


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _check_broker():
    from kombu import Connection

    # A fresh, unpooled connection: a pooled one can report a broker that has since gone away.
    with Connection(settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTHZ_BROKER_TIMEOUT_S)
        return conn.transport.driver_name


def _check_storage():
    name = default_storage.save(f"healthz/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name) as fh:
            if fh.read() != b"ok":
                raise OSError("storage returned different bytes than were written")
    finally:
        default_storage.delete(name)
    return type(default_storage).__name__


@never_cache
def healthz(request):
    checks = {"database": _timed(_check_database), "broker": _timed(_check_broker), "storage": _timed(_check_storage)}
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503)


NUL_IN_QUERY = "The address's query holds a NUL character (%00), which no field accepts. Remove it and try again."


def bad_request(request, exception=None):
    """Django's own 400s (a body past DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields, a bad Host) are JSON
    on the API, in the same shape as every other API error. A NUL character in the query
    (`NulCharacterGuardMiddleware`) says so, on pages as well."""
    from .middleware import NulCharacterInQuery

    if isinstance(exception, NulCharacterInQuery) and not is_api_path(request.path):
        return render(request, "400.html", {"detail": NUL_IN_QUERY}, status=400)
    if request.path.startswith(("/api/", "/v1/")):
        if isinstance(exception, RequestDataTooBig):
            limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
            detail = f"The request body is larger than {limit_mb} MB; send less per request."
            code = "request_too_large"
        elif isinstance(exception, NulCharacterInQuery):
            detail, code = NUL_IN_QUERY, "invalid_query"
        else:
            detail, code = "The request could not be read.", "bad_request"
        if request.path.startswith("/v1/"):  # the OpenAI-compatible routes answer OpenAI's shape
            return JsonResponse({"error": {"message": detail, "type": "invalid_request_error", "param": None,
                                           "code": code}}, status=400)
        return json_error(status_code=400, code=code, detail=detail)
    return defaults.bad_request(request, exception)


API_PREFIXES = ("/api/", "/v1/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def api_not_found_response(request):
    """The 404 of an address the API does not have, in the error shape of its routes: OpenAI's under
    /v1/ (what its clients parse), `{"code", "detail", "fields"}` under /api/."""
    detail = f"There is nothing at {request.path}."
    if request.path.startswith("/v1/"):
        return JsonResponse({"error": {"message": f"{detail} The routes here are GET /v1/models, "
                                                  "POST /v1/chat/completions and POST /v1/completions.",
                                       "type": "invalid_request_error", "param": None, "code": "not_found"}},
                            status=404)
    return json_error(status_code=404, code="not_found", detail=f"{detail} The API is described at /api/docs/.")


def api_not_found(request, exception=None):
    if is_api_path(request.path):
        return api_not_found_response(request)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith(("/api/", "/v1/")):
        return json_error(status_code=500, code="server_error", detail="Something went wrong on our side; it has been logged.")
    return render(request, "500.html", status=500)
