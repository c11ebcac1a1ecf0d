"""OpenAI-style errors of the serving API: `{"error": {"message", "type", "param", "code"}}`."""

from django.http import JsonResponse


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
}


def from_model_server(exc) -> OpenAIError:
    """Turn a `client.ModelServerError` into the error the API answers with."""
    code = ENGINE_CODES.get(exc.code or "", exc.code or "model_server_error")
    if code == "model_not_loaded":
        return OpenAIError("This model is deployed but the model server has not loaded it yet; retry in a few "
                           "seconds.", status=503, type="server_error", code=code)
    if code in ("model_unavailable",):
        return OpenAIError(f"This model cannot be served right now: {exc.message}", status=503, type="server_error",
                           code=code)
    status = exc.status if exc.status in (400, 404, 413, 422, 429, 503) else 502 if exc.status >= 500 else exc.status
    error_type = exc.type if status < 500 else "server_error"
    return OpenAIError(exc.message, status=status, type=error_type, param=exc.param, code=code)
