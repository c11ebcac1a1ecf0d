"""HTTP client of the model servers (`inference.engine.server`), used by the web tier (answers, search-query
embeddings) and serve_models.

`ModelServerClient(url)` talks to one server; `ModelServerClient("http://a:8100,http://b:8100")` (or a
list) to several, routing each request through `inference.routing.ServerPool`: to a healthy server that
holds the adapter, retried on another one when a server fails before the first token. The web tier builds
it from `settings.INFERENCE_SERVER_URL` (one URL or the comma-joined `INFERENCE_SERVER_URLS`).

Every request carries `Authorization: Bearer <token>`; the token defaults to `INFERENCE_SERVER_TOKEN`
(Django's setting when Django is configured, else the environment). Errors come back as
`ModelServerError` with the server's OpenAI-style error and status; an unreachable server (refused,
reset, a stream cut short) is a 503 `model_server_unavailable`, one that took the request and did not
answer (or send the stream's next part) within the read timeout a 504 `model_server_timeout` (never
retried on another server: the first may still be running it), and one that refuses the token a 503
`model_server_auth` (an operator's problem, never reported to API users as their own authentication
failure). The API answers the first two as 502 `upstream_error` (`inference.errors.from_model_server`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Engine errors a server reports inside a stream, by the status the same error has as an HTTP answer.
_STREAM_ERROR_STATUS = {"EngineCapacityError": 503, "AdapterNotFoundError": 404, "RequestTimeoutError": 504}


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

    @property
    def server_unusable(self) -> bool:
        """The server could not take the request at all (down, draining, overloaded, wrong token): another
        server may."""
        return self.code in ("model_server_unavailable", "model_server_auth") or self.status == 503


class StreamDeadlineExceeded(ModelServerError):
    """A stream still running at its total deadline (`GenerationEvents.deltas(deadline=...)`). A timeout
    (`model_server_timeout`, never retried elsewhere: the server may still be generating), told apart so the
    API can say that the answer was cut at its time limit rather than that the server fell silent."""


def unavailable(url: str, exc: Exception) -> ModelServerError:
    return ModelServerError(status=503, message=f"The model server {url} is not reachable ({type(exc).__name__}).",
                            code="model_server_unavailable")


def timed_out(url: str, what: str = "did not answer in time") -> ModelServerError:
    """The server took the request and then said nothing within the read timeout. Not `server_unusable`:
    sending the request elsewhere could run it twice."""
    return ModelServerError(status=504, message=f"The model server {url} {what}.", code="model_server_timeout")


def transport_error(url: str, exc: Exception) -> ModelServerError:
    """An httpx failure as the client's error: a read timeout is a timeout, anything else (connection
    refused or reset, a connect timeout: nothing was sent) the server being unreachable."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return timed_out(url)
    return unavailable(url, exc)


def configured_token() -> str:
    """`INFERENCE_SERVER_TOKEN` from Django's settings when they are configured, else from the environment
    (or the file named by `INFERENCE_SERVER_TOKEN_FILE`). Imported lazily: this module works without Django."""
    try:
        from django.conf import settings

        if settings.configured:
            return getattr(settings, "INFERENCE_SERVER_TOKEN", "") or ""
    except ImportError:  # pragma: no cover - Django is installed wherever Lineage runs
        pass
    path = os.environ.get("INFERENCE_SERVER_TOKEN_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    return os.environ.get("INFERENCE_SERVER_TOKEN", "")


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """`"http://a:8100, http://b:8100/"` or a list -> `["http://a:8100", "http://b:8100"]`."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    return [item.strip().rstrip("/") for item in items if item and item.strip()]


@dataclass
class GenerationEvents:
    """A streamed generation: iterate `deltas()`, then read `final` (text, usage, finish_reason, slot)."""

    response: httpx.Response
    final: dict = field(default_factory=dict)
    server: str = ""  # the server's URL, for messages

    def deltas(self, *, deadline: float | None = None) -> Iterator[str]:
        """The answer's text deltas. `deadline` (a `time.monotonic()` instant) bounds the whole stream: the
        read timeout only bounds each wait, so a server that keeps sending keep-alive comments, a token now
        and then, or bytes without a line end would otherwise hold the stream forever. Past it (checked
        whenever bytes arrive, so at most one read timeout late) `StreamDeadlineExceeded` is raised."""
        # A server that dies mid-answer may look like a body that simply ended: only `[DONE]` after the
        # final event proves the answer is complete.
        try:
            for line in self._lines(deadline):
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    if not self.final:
                        break
                    return
                event = json.loads(data)
                if "error" in event:
                    status = _STREAM_ERROR_STATUS.get(str((event["error"] or {}).get("code")), 500)
                    raise ModelServerError.from_response(status, event)
                if "delta" in event:
                    yield event["delta"]
                else:
                    self.final = event
        except httpx.TimeoutException as exc:  # the server stalled: a hung engine, a stopped process
            raise timed_out(self.server or "answering", "sent nothing more within the read timeout mid-answer"
                            ) from exc
        except httpx.HTTPError as exc:
            raise ModelServerError(status=503, message=f"The model server connection broke mid-answer "
                                   f"({type(exc).__name__}).", code="model_server_unavailable") from exc
        raise ModelServerError(status=503, message="The model server stopped before the answer was complete.",
                               code="model_server_unavailable")

    def _lines(self, deadline: float | None) -> Iterator[str]:
        """The body's lines as they arrive. Split here rather than by `iter_lines`, which waits for a line end:
        the deadline is checked on every chunk, after the complete lines it carried (an answer finished in
        that chunk is still taken)."""
        pending = b""
        for chunk in self.response.iter_bytes():
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
            if deadline is not None and time.monotonic() > deadline:
                raise StreamDeadlineExceeded(
                    status=504, code="model_server_timeout",
                    message=f"The model server {self.server or ''} was still streaming at the web tier's stream "
                            "deadline (INFERENCE_STREAM_MAX_S).")
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", errors="replace")

    def close(self) -> None:
        self.response.close()  # the server cancels the generation and frees its slot


def _generate_input(prompt: str | None, messages: list[dict] | None) -> dict:
    return {"messages": list(messages)} if messages is not None else {"prompt": prompt}


# Idle pooled connections are dropped after this long, well before the model server closes them
# (INFERENCE_SERVER_KEEPALIVE_S, 5 s by default): with equal timeouts the client now and then sent a request on a
# connection the server was closing, and got "Server disconnected without sending a response" (twice in the
# 600 s load run, each a 502 for the caller).
KEEPALIVE_EXPIRY_S = 2.0


class ServerConnection:
    """One model server: every endpoint, with the token, as plain calls."""

    def __init__(self, base_url: str, *, token: str = "", timeout: float = 120.0, connect_timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers,
                                    timeout=httpx.Timeout(timeout, connect=connect_timeout),
                                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20,
                                                        keepalive_expiry=KEEPALIVE_EXPIRY_S))

    def __repr__(self) -> str:
        return f"ServerConnection({self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def _error(self, status: int, payload: object) -> ModelServerError:
        if status == 401:
            return ModelServerError(status=503, code="model_server_auth", message=(
                f"The model server {self.base_url} refused this process's token: set the same INFERENCE_SERVER_TOKEN"
                " for the web tier and the model servers."))
        return ModelServerError.from_response(status, payload)

    def request(self, method: str, path: str, body: dict | None = None, *, timeout: float | None = None) -> dict:
        try:
            kwargs = {"json": body} if body is not None else {}
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(self.base_url, exc) from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            raise self._error(response.status_code, payload)
        return payload

    # -- inference
    def classify(self, text: str, *, adapter: str | None) -> dict:
        return self.request("POST", "/v1/classify", {"input": [text], "adapter": adapter})["results"][0]

    def generate(self, prompt: str | None = None, *, adapter: str | None, messages: list[dict] | None = None,
                 **params) -> dict:
        return self.request("POST", "/v1/generate", {**_generate_input(prompt, messages), "adapter": adapter,
                                                     **params})

    def generate_stream(self, prompt: str | None = None, *, adapter: str | None, messages: list[dict] | None = None,
                        **params) -> GenerationEvents:
        request = self._client.build_request(
            "POST", "/v1/generate",
            json={**_generate_input(prompt, messages), "adapter": adapter, **params, "stream": True})
        try:
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:  # a server that takes the request and sends no headers: a timeout
            raise transport_error(self.base_url, exc) from exc
        if response.status_code >= 400:
            response.read()
            try:
                payload = response.json()
            except ValueError:
                payload = None
            response.close()
            raise self._error(response.status_code, payload)
        return GenerationEvents(response, server=self.base_url)

    def embed(self, texts: Sequence[str], *, model: str) -> dict:
        """`POST /v1/embeddings`: OpenAI's embeddings answer (float vectors) plus `model_identity`."""
        return self.request("POST", "/v1/embeddings", {"input": list(texts), "model": model,
                                                       "encoding_format": "float"})

    # -- administration
    def stats(self, *, timeout: float | None = None) -> dict:
        return self.request("GET", "/v1/stats", timeout=timeout)

    def health(self, *, timeout: float | None = None) -> dict:
        """Liveness (`/healthz`, no token needed)."""
        return self.request("GET", "/healthz", timeout=timeout)

    def status(self, *, timeout: float | None = None) -> dict:
        """What the server holds (`/v1/health`): bases, adapters, its instance id and model root."""
        return self.request("GET", "/v1/health", timeout=timeout)

    def load_base(self, *, name: str, model: str, task: str, **options) -> dict:
        return self.request("POST", "/v1/bases/load", {"name": name, "model": model, "task": task, **options})

    def unload_base(self, *, name: str) -> dict:
        return self.request("POST", "/v1/bases/unload", {"name": name})

    def load_adapter(self, *, name: str, version: str, sha256: str, base: str, labels=None, wait: bool = True) -> dict:
        body = {"name": name, "version": version, "sha256": sha256, "base": base, "wait": wait}
        if labels:
            body["labels"] = list(labels)
        return self.request("POST", "/v1/adapters/load", body)

    def unload_adapter(self, *, name: str) -> dict:
        return self.request("POST", "/v1/adapters/unload", {"name": name})


class ModelServerClient:
    """The model servers at `base_url` (one URL, a comma-separated list, or a sequence).

    Inference calls are routed (see `inference.routing`); administration calls (`load_base`,
    `load_adapter`, ...) and `status` need a client for one server, since they act on that server."""

    def __init__(self, base_url: str | Sequence[str], *, token: str | None = None, timeout: float = 120.0,
                 connect_timeout: float = 5.0, health_ttl: float = 2.0) -> None:
        from .routing import ServerPool

        urls = split_urls(base_url)
        if not urls:
            raise ValueError("no model server URL: set INFERENCE_SERVER_URL or INFERENCE_SERVER_URLS")
        # Kept as given (less a trailing slash) so callers can tell whether their configuration changed.
        self.base_url = base_url.rstrip("/") if isinstance(base_url, str) else ",".join(urls)
        token = configured_token() if token is None else token
        self.connections = [ServerConnection(url, token=token, timeout=timeout, connect_timeout=connect_timeout)
                            for url in urls]
        self.pool = ServerPool(self.connections, health_ttl=health_ttl)

    def close(self) -> None:
        for connection in self.connections:
            connection.close()

    def _single(self, what: str) -> ServerConnection:
        if len(self.connections) != 1:
            raise ValueError(f"{what} acts on one model server: use ModelServerClient(url) for each server")
        return self.connections[0]

    # -- inference (routed)
    def classify(self, text: str, *, adapter: str | None) -> dict:
        return self.pool.call(lambda server: server.classify(text, adapter=adapter), adapter=adapter)

    def generate(self, prompt: str | None = None, *, adapter: str | None, messages: list[dict] | None = None,
                 **params) -> dict:
        """Generate from `prompt`, or from a chat history (`messages`, rendered by the server with the base
        tokenizer's chat template; the answer then carries that `prompt`)."""
        return self.pool.call(lambda server: server.generate(prompt, adapter=adapter, messages=messages, **params),
                              adapter=adapter)

    def generate_stream(self, prompt: str | None = None, *, adapter: str | None, messages: list[dict] | None = None,
                        **params):
        """A stream whose request errors are raised here, before any token; see `routing.RoutedGeneration`."""
        return self.pool.stream(
            lambda server: server.generate_stream(prompt, adapter=adapter, messages=messages, **params),
            adapter=adapter)

    def embed(self, texts: Sequence[str], *, model: str) -> dict:
        """Embed `texts` on any healthy server (every server embeds with the bundled MiniLM)."""
        return self.pool.call(lambda server: server.embed(texts, model=model), adapter=None)

    # -- status
    def stats(self, *, timeout: float | None = None) -> dict:
        """One server's `/v1/stats`; for several, their bases side by side (named `base @ host:port`) and
        `servers` saying which answered. Raises when none did."""
        return self.pool.stats(timeout=timeout)

    def health(self, *, timeout: float | None = None) -> dict:
        return self.pool.liveness(timeout=timeout)

    # -- administration (one server)
    def status(self, *, timeout: float | None = None) -> dict:
        return self._single("status").status(timeout=timeout)

    def load_base(self, *, name: str, model: str, task: str, **options) -> dict:
        return self._single("load_base").load_base(name=name, model=model, task=task, **options)

    def unload_base(self, *, name: str) -> dict:
        return self._single("unload_base").unload_base(name=name)

    def load_adapter(self, *, name: str, version: str, sha256: str, base: str, labels=None, wait: bool = True) -> dict:
        return self._single("load_adapter").load_adapter(name=name, version=version, sha256=sha256, base=base,
                                                         labels=labels, wait=wait)

    def unload_adapter(self, *, name: str) -> dict:
        return self._single("unload_adapter").unload_adapter(name=name)
