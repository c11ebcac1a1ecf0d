"""HTTP client of the model server (`inference.engine.server`), used by the web tier and serve_models.

No Django import: errors come back as :class:`ModelServerError` carrying the server's OpenAI-style
error object and HTTP status; an unreachable server is a 503 `model_server_unavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx


@dataclass
class ModelServerError(Exception):
    status: int
    message: str
    type: str = "server_error"
    param: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_response(cls, status: int, payload: object) -> ModelServerError:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return cls(status=status, message=f"model server answered HTTP {status}")
        return cls(status=status, message=str(error.get("message") or "model server error"),
                   type=str(error.get("type") or "server_error"), param=error.get("param"), code=error.get("code"))


@dataclass
class GenerationEvents:
    """A streamed generation: iterate `deltas()`, then read `final` (text, usage, finish_reason, slot)."""

    response: httpx.Response
    final: dict = field(default_factory=dict)

    def deltas(self) -> Iterator[str]:
        # The server streams with `Connection: close` and no length, so a server that dies mid-answer looks
        # like a body that simply ended: only `[DONE]` after the final event proves the answer is complete.
        try:
            for line in self.response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    if not self.final:
                        break
                    return
                event = json.loads(data)
                if "error" in event:
                    raise ModelServerError.from_response(500, event)
                if "delta" in event:
                    yield event["delta"]
                else:
                    self.final = event
        except httpx.HTTPError as exc:
            raise ModelServerError(status=503, message=f"The model server connection broke mid-answer "
                                   f"({type(exc).__name__}).", code="model_server_unavailable") from exc
        raise ModelServerError(status=503, message="The model server stopped before the answer was complete.",
                               code="model_server_unavailable")

    def close(self) -> None:
        self.response.close()  # the server cancels the generation and frees its slot


def _generate_input(prompt: str | None, messages: list[dict] | None) -> dict:
    return {"messages": list(messages)} if messages is not None else {"prompt": prompt}


class ModelServerClient:
    def __init__(self, base_url: str, *, timeout: float = 120.0, connect_timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=connect_timeout))

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, body: dict | None = None, *, timeout: float | None = None) -> dict:
        try:
            kwargs = {"json": body} if body is not None else {}
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ModelServerError(status=503, message=f"The model server is not reachable ({type(exc).__name__}).",
                                   type="server_error", code="model_server_unavailable") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            raise ModelServerError.from_response(response.status_code, payload)
        return payload

    # -- inference
    def classify(self, text: str, *, adapter: str | None) -> dict:
        return self._request("POST", "/v1/classify", {"input": [text], "adapter": adapter})["results"][0]

    def generate(self, prompt: str | None = None, *, adapter: str | None, messages: list[dict] | None = None,
                 **params) -> dict:
        """Generate from `prompt`, or from a chat history (`messages`, rendered by the server with the base
        tokenizer's chat template; the answer then carries that `prompt`)."""
        return self._request("POST", "/v1/generate", {**_generate_input(prompt, messages), "adapter": adapter,
                                                      **params})

    def generate_stream(self, prompt: str | None = None, *, adapter: str | None, messages: list[dict] | None = None,
                        **params) -> GenerationEvents:
        request = self._client.build_request(
            "POST", "/v1/generate",
            json={**_generate_input(prompt, messages), "adapter": adapter, **params, "stream": True})
        try:
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ModelServerError(status=503, message=f"The model server is not reachable ({type(exc).__name__}).",
                                   code="model_server_unavailable") from exc
        if response.status_code >= 400:
            response.read()
            try:
                payload = response.json()
            except ValueError:
                payload = None
            response.close()
            raise ModelServerError.from_response(response.status_code, payload)
        return GenerationEvents(response)

    # -- administration
    def stats(self, *, timeout: float | None = None) -> dict:
        return self._request("GET", "/v1/stats", timeout=timeout)

    def health(self, *, timeout: float | None = None) -> dict:
        return self._request("GET", "/healthz", timeout=timeout)

    def load_base(self, *, name: str, path: str, task: str, **options) -> dict:
        return self._request("POST", "/v1/bases/load", {"name": name, "path": path, "task": task, **options})

    def load_adapter(self, *, name: str, path: str, sha256: str, base: str, labels=None, wait: bool = True) -> dict:
        body = {"name": name, "path": path, "sha256": sha256, "base": base, "wait": wait}
        if labels:
            body["labels"] = list(labels)
        return self._request("POST", "/v1/adapters/load", body)

    def unload_adapter(self, *, name: str) -> dict:
        return self._request("POST", "/v1/adapters/unload", {"name": name})
