"""One exception hierarchy for everything the SDK can report.

`LineageError` is the root. `ApiError` and its subclasses mean the server answered with an error: they carry
the API's error shape (`code`, `detail`, `fields`) and the HTTP `status`, with the server's own sentence as
the message. Lineage's REST API answers `{code, detail, fields}`; the OpenAI-compatible routes (`/v1/...`)
answer `{"error": {message, type, param, code}}`, which is mapped onto the same attributes (`param` becomes
a `fields` key), so callers branch on one set of names whichever route they used.
"""

from __future__ import annotations

from typing import Any

import httpx

# The server's 404 sentence when it does not say which object it looked for.
_GENERIC_NOT_FOUND = {"", "Not found.", "No such object."}


class LineageError(Exception):
    """Base class of every error raised by the SDK."""

    code: str = "error"
    detail: str = ""
    fields: dict[str, list[str]]
    status: int | None = None

    def __init__(self, detail: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None,
                 status: int | None = None) -> None:
        self.detail = detail
        self.code = code or type(self).code
        self.fields = dict(fields or {})
        self.status = status
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """`detail`, then each field's messages (a 400's `detail` alone may only say "see `fields`")."""
        parts = [self.detail] if self.detail else []
        parts += [f"{name}: {' '.join(messages)}" for name, messages in self.fields.items() if messages]
        return " ".join(p if p.endswith((".", "!", "?", ")")) else p + "." for p in parts) or self.code


class ConfigurationError(LineageError):
    """No API key (or no usable configuration) to talk to a server with."""

    code = "configuration"


class LineageConnectionError(LineageError):
    """The server could not be reached, or the connection broke before it answered."""

    code = "connection"


class IntegrityError(LineageError):
    """A download did not match the hash the API gave for it; nothing was kept."""

    code = "integrity"


class InvalidAmountError(LineageError, ValueError):
    """An amount of OPEN that is not a non-negative decimal with at most 18 places."""

    code = "invalid_amount"


class JobFailedError(LineageError):
    """A wait ended with the job (contribution or fine-tune) failed or cancelled. `result` is its last state."""

    code = "job_failed"

    def __init__(self, detail: str, *, result: Any = None, code: str | None = None) -> None:
        self.result = result
        super().__init__(detail, code=code)


class WaitTimeoutError(LineageError):
    """A wait ran out of time; the job itself goes on. `result` is its last state."""

    code = "wait_timeout"

    def __init__(self, detail: str, *, result: Any = None) -> None:
        self.result = result
        super().__init__(detail)


class WaitInterrupted(KeyboardInterrupt):
    """Ctrl-C during a wait: only the waiting stopped, nothing on the server was touched. A KeyboardInterrupt,
    so a program that does not catch it stops as it would on Ctrl-C; `result` is the last state seen."""

    def __init__(self, message: str, *, result: Any = None) -> None:
        self.message, self.result = message, result
        super().__init__(message)


class ApiError(LineageError):
    """The server answered with an error status."""


class BadRequestError(ApiError):
    code = "invalid"


class AuthenticationError(ApiError):
    code = "not_authenticated"


class PermissionDeniedError(ApiError):
    code = "permission_denied"


class NotFoundError(ApiError):
    code = "not_found"


class ConflictError(ApiError):
    code = "conflict"


class RateLimitError(ApiError):
    """Too many requests, or (on `/v1`) not enough credit: `code` says which (`insufficient_quota`)."""

    code = "throttled"

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(detail, **kwargs)


class ServerError(ApiError):
    code = "server_error"


_BY_STATUS: dict[int, type[ApiError]] = {400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
                                         404: NotFoundError, 409: ConflictError, 413: BadRequestError,
                                         415: BadRequestError, 422: BadRequestError, 429: RateLimitError}


def _error_body(response: httpx.Response) -> tuple[str | None, str, dict[str, list[str]]]:
    """(code, detail, fields) from either of the server's error shapes, or from whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # OpenAI's shape, on /v1/
        error = body["error"]
        message = str(error.get("message") or "")
        param = error.get("param")
        return (error.get("code") or error.get("type")), message, ({str(param): [message]} if param else {})
    if isinstance(body, dict) and "detail" in body:
        fields = body.get("fields") or {}
        fields = {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in fields.items()} \
            if isinstance(fields, dict) else {}
        return body.get("code"), str(body.get("detail") or ""), fields
    text = response.text.strip() if response.headers.get("content-type", "").startswith("text/plain") else ""
    return None, (text[:300] or f"{response.status_code} {response.reason_phrase}".strip()), {}


def error_from_response(response: httpx.Response, *, what: str | None = None) -> ApiError:
    """The exception for an error response. `what` ("Datanet “intents”") names the object a 404 is about
    when the server's sentence does not."""
    status = response.status_code
    code, detail, fields = _error_body(response)
    if status == 404 and what and detail in _GENERIC_NOT_FOUND:
        detail = f"No {what} that this API key can see."
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, BadRequestError)
    kwargs: dict[str, Any] = {"code": code, "fields": fields, "status": status}
    if cls is RateLimitError:
        retry = response.headers.get("retry-after")
        kwargs["retry_after"] = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    return cls(detail, **kwargs)
