"""Error types raised by the serving engine.

Each error carries the OpenAI-style ``error_type`` and the HTTP status the server (and the Django
proxy in front of it) should answer with, so the mapping lives next to the error and not in every
caller.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    error_type = "server_error"
    http_status = 500

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_dict(self) -> dict:
        """OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": type(self).__name__,
            }
        }


class InvalidRequestError(EngineError):
    """A request parameter is out of range or malformed (temperature, top_p, max_tokens, ...)."""

    error_type = "invalid_request_error"
    http_status = 400


class ContextLengthExceededError(InvalidRequestError):
    """Prompt plus requested tokens do not fit in the model's context window."""


class AdapterNotFoundError(EngineError):
    """The adapter name is not registered, or its files are missing on disk."""

    error_type = "not_found_error"
    http_status = 404


class AdapterIntegrityError(EngineError):
    """The adapter files do not match the sha256 the caller vouched for; they are refused."""

    error_type = "invalid_request_error"
    http_status = 422


class AdapterIncompatibleError(EngineError):
    """The adapter cannot run on this base model (unknown module, rank too large, DoRA, ...)."""

    error_type = "invalid_request_error"
    http_status = 422


class EngineCapacityError(EngineError):
    """The engine cannot take the request now (adapter slots all pinned, queue full, shut down)."""

    error_type = "server_overloaded"
    http_status = 503


class RequestCancelledError(EngineError):
    """The request was cancelled (client disconnect or explicit cancel) before it completed."""

    error_type = "cancelled"
    http_status = 499
