"""OpenAI-style errors of the serving API: `{"error": {"message", "type", "param", "code"}}`.

A model server that cannot be reached, or that took the request and did not answer in time, is the
platform's upstream failing, not the caller's mistake: the API answers 502 with `type` `upstream_error`
and `code` `model_server_unavailable` or `model_server_timeout` (in a stream: the same error as the last
event before `[DONE]`). The message says what happened and that nothing was charged; the server's
address is logged for operators, never shown to callers.
"""

import logging

from django.http import JsonResponse

logger = logging.getLogger("inference")


class OpenAIError(Exception):
    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",  # noqa: A002
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = message, status, type, param, code

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JsonResponse:
        response = JsonResponse(self.to_dict(), status=self.status)
        if self.code == "insufficient_quota":
            response["x-should-retry"] = "false"  # a 429 the openai clients would otherwise retry: waiting won't help
        return response


def invalid(message: str, *, param: str | None = None, code: str = "invalid_value") -> OpenAIError:
    return OpenAIError(message, status=400, param=param, code=code)


def insufficient_quota(message: str) -> OpenAIError:
    """Short credit, as OpenAI answers it: HTTP 429, `type` and `code` `insufficient_quota`."""
    return OpenAIError(message, status=429, type="insufficient_quota", code="insufficient_quota")


# Engine error class names (the server's `code`) mapped to stable API codes.
ENGINE_CODES = {
    "ContextLengthExceededError": "context_length_exceeded",
    "InvalidRequestError": "invalid_value",
    "AdapterNotFoundError": "model_not_loaded",
    "AdapterIntegrityError": "model_unavailable",
    "AdapterIncompatibleError": "model_unavailable",
    "EngineCapacityError": "server_overloaded",
    "RequestCancelledError": "cancelled",
    "RequestTimeoutError": "model_server_timeout",  # the server's own deadline (--request-timeout) cut it
}

UPSTREAM_MESSAGES = {
    "model_server_unavailable": "The model server is not reachable right now, so this request was not answered; "
                                "nothing was charged. Retry in a moment.",
    "model_server_timeout": "The model server did not answer in time, so this request was not answered; nothing "
                            "was charged. Retry, or ask for fewer tokens (max_tokens).",
}


def upstream_error(code: str) -> OpenAIError:
    """HTTP 502 `upstream_error`: the model server is down (`model_server_unavailable`) or too slow
    (`model_server_timeout`)."""
    return OpenAIError(UPSTREAM_MESSAGES[code], status=502, type="upstream_error", code=code)


def stream_deadline_error(limit_s: float) -> OpenAIError:
    """The `model_server_timeout` upstream error of a stream still running at its total deadline
    (`INFERENCE_STREAM_MAX_S`): the server kept it alive, but the answer took longer than a stream may."""
    return OpenAIError(f"The answer did not finish within {limit_s:g} seconds, the longest a streamed answer may "
                       "take, so it was stopped; nothing was charged. Retry, or ask for fewer tokens (max_tokens).",
                       status=502, type="upstream_error", code="model_server_timeout")


def from_model_server(exc) -> OpenAIError:
    """Turn a `client.ModelServerError` into the error the API answers with."""
    code = ENGINE_CODES.get(exc.code or "", exc.code or "model_server_error")
    if code in UPSTREAM_MESSAGES:
        logger.warning("model server failure answered as 502 %s: %s", code, exc.message)
        return upstream_error(code)
    if code == "model_not_loaded":
        return OpenAIError("This model is deployed but the model server has not loaded it yet; retry in a few "
                           "seconds.", status=503, type="server_error", code=code)
    if code in ("model_unavailable",):
        return OpenAIError(f"This model cannot be served right now: {exc.message}", status=503, type="server_error",
                           code=code)
    status = exc.status if exc.status in (400, 404, 413, 422, 429, 503) else 502 if exc.status >= 500 else exc.status
    error_type = exc.type if status < 500 else "server_error"
    return OpenAIError(exc.message, status=status, type=error_type, param=exc.param, code=code)
