"""The model server's HTTP API: a Starlette app over an :class:`~.engine_host.EngineHost`.

Endpoints (JSON in, JSON out; every one but ``GET /healthz`` needs ``Authorization: Bearer <token>``
when the server has a token, and answers 401 JSON without it):

- ``GET /healthz``: liveness, no token: ``{"status": "ok" | "draining", "task"}`` (503 while draining).
- ``GET /v1/health``: what the web tier routes by: ``{"status", "instance", "model_root", "bases":
  {name: {"task", "model"}}, "adapters": {name: {"base", "version", "sha256"}}}``.
- ``GET /v1/stats``: the first engine's counters plus ``"bases": {name: stats}``.
- ``POST /v1/classify`` ``{"input": str | [str], "adapter", "base"}``
- ``POST /v1/generate`` ``{"prompt" | "messages", "adapter", "base", "max_tokens", "temperature", "top_p",
  "stop", "seed", "add_bos", "stream"}``; streamed as server-sent events: ``data: {"delta": ...}`` per
  text delta, then ``data: {"finish_reason", "usage", ...}`` and ``data: [DONE]``; an error after the
  stream started is one ``data: {"error": ...}`` event and no ``[DONE]``.
- ``POST /v1/embeddings`` ``{"input": str | [str], "model", "encoding_format"}``: OpenAI's embeddings API
  over the bundled MiniLM that retrieval indexes are built with (:mod:`.embeddings`), for the web tier's
  search queries; the answer adds ``model_identity`` (the model's fingerprint and dimension).
- ``POST /v1/adapters/load`` ``{"name", "version", "sha256", "base", "labels", "pin", "wait"}``: ``version``
  is the id of an adapter published under the model root (see :mod:`.model_store`), never a path.
- ``POST /v1/adapters/unload`` ``{"name", "base"}``; ``POST /v1/adapters/pin`` ``{"name", "pinned"}``
- ``POST /v1/bases/load`` ``{"name", "model", "task", "num_slots", "max_rank", "num_labels", ...}``: ``model``
  is a base id under the model root; idempotent by name. ``POST /v1/bases/unload`` ``{"name"}``

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``. Every request has a deadline
(``request_timeout``): reading the body, waiting for a slot and generating all count; past it a plain
request gets 504 and a stream an error event, and the generation is cancelled. A client that disconnects
mid-stream cancels its generation too, which frees its slot. While the server drains (shutdown begun),
streams already running finish and anything new gets 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .embeddings import embeddings_payload, parse_request
from .engine import GenerationResult, Task
from .engine_host import EngineHost
from .errors import EngineError, InvalidRequestError
from .generation import GenerationParams

logger = logging.getLogger("inference.engine.server")

MAX_BODY_BYTES = 4 * 2**20
PUBLIC_PATHS = frozenset({"/healthz"})
_END = object()


class RequestTimeoutError(EngineError):
    error_type = "timeout"
    http_status = 504


def error_body(message: str, error_type: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class Gate:
    """ASGI middleware in front of every route: the bearer token, then the drain state."""

    def __init__(self, app, *, host: EngineHost, token: str | None) -> None:
        self.app, self.host, self.token = app, host, (token or None)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self.token is not None and not self._authorised(scope):
            body = error_body("missing or wrong bearer token: send 'Authorization: Bearer <INFERENCE_SERVER_TOKEN>'"
                              " (the same secret the server was started with)", "authentication_error",
                              code="invalid_token")
            await JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        if self.host.draining:
            body = error_body("this model server is shutting down; send the request to another server",
                              "server_overloaded", code="server_draining")
            await JSONResponse(body, status_code=503, headers={"Connection": "close"})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, presented = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), self.token.encode())


class EngineApp:
    """Handlers bound to one host; ``asgi`` is the app uvicorn serves."""

    def __init__(self, host: EngineHost, *, token: str | None = None, request_timeout: float = 300.0,
                 max_streams: int = 256) -> None:
        self.host = host
        self.request_timeout = request_timeout
        # Waiting for a generation's next delta blocks a thread; these waits get their own pool so that
        # many open streams never starve the short work (tokenising, loads) of Starlette's pool.
        self._waits = ThreadPoolExecutor(max_workers=max_streams, thread_name_prefix="generation-wait")
        routes = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/health", self._plain(self.health), methods=["GET"]),
            Route("/v1/stats", self._plain(self.stats), methods=["GET"]),
            Route("/v1/classify", self._plain(self.classify), methods=["POST"]),
            Route("/v1/generate", self.generate, methods=["POST"]),
            Route("/v1/embeddings", self._plain(self.embeddings), methods=["POST"]),
            # Loading a large base takes minutes: administration is bounded only while its body arrives.
            Route("/v1/adapters/load", self._plain(self.load_adapter, bounded=False), methods=["POST"]),
            Route("/v1/adapters/unload", self._plain(self.unload_adapter, bounded=False), methods=["POST"]),
            Route("/v1/adapters/pin", self._plain(self.pin_adapter, bounded=False), methods=["POST"]),
            Route("/v1/bases/load", self._plain(self.load_base, bounded=False), methods=["POST"]),
            Route("/v1/bases/unload", self._plain(self.unload_base, bounded=False), methods=["POST"]),
        ]
        app = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})
        self.asgi = Gate(app, host=host, token=token)

    def close(self) -> None:
        self._waits.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else exc.detail
        return JSONResponse(error_body(message, kind), status_code=exc.status_code)

    def _plain(self, handler, *, bounded: bool = True):
        """A JSON endpoint under the request deadline (``bounded=False``: only its body is), engine errors
        answered in OpenAI's shape."""

        async def endpoint(request: Request) -> JSONResponse:
            deadline = time.monotonic() + self.request_timeout
            try:
                async with _deadline(deadline):
                    body = await self._read_json(request) if request.method == "POST" else None
                    if bounded:
                        payload = await (handler(body) if body is not None else handler())
                if not bounded:
                    payload = await (handler(body) if body is not None else handler())
                return JSONResponse(payload)
            except EngineError as exc:
                return JSONResponse(exc.to_dict(), status_code=exc.http_status)
            except Exception:  # noqa: BLE001 - one bad request must not take the server down
                logger.exception("unhandled error on %s", request.url.path)
                return JSONResponse(error_body("internal error", "server_error"), status_code=500)

        return endpoint

    @staticmethod
    async def _read_json(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise InvalidRequestError(f"request body too large (over {MAX_BODY_BYTES} bytes)")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise InvalidRequestError(f"request body too large (over {MAX_BODY_BYTES} bytes)")
        try:
            body = json.loads(bytes(raw) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequestError("body must be a JSON object")
        return body

    # ------------------------------------------------------------------ status
    async def healthz(self, request: Request) -> JSONResponse:
        engine, bases = self.host.engine, {n: i["task"] for n, i in self.host.base_info.items()}
        status = "draining" if self.host.draining else "ok"
        payload = {"status": status, "task": None if engine is None or len(bases) > 1 else engine.task.value}
        if len(bases) > 1:
            payload["bases"] = bases
        return JSONResponse(payload, status_code=503 if self.host.draining else 200)

    async def health(self) -> dict:
        return self.host.health()

    async def stats(self) -> dict:
        return await run_in_threadpool(self.host.stats)

    # ------------------------------------------------------------------ bases and adapters
    async def load_base(self, body: dict) -> dict:
        if "path" in body:
            raise InvalidRequestError("bases are loaded by id from the server's model root, not by path: send"
                                      " 'model' (the base's id under <model root>/bases)", param="path")
        name, model, task = (_required_str(body, key) for key in ("name", "model", "task"))
        if task not in {t.value for t in Task}:
            raise InvalidRequestError(f"task must be one of {[t.value for t in Task]}", param="task")
        options = {}
        for key in ("num_slots", "max_rank", "max_batch_rows", "num_labels", "num_pages"):
            if body.get(key) is not None:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise InvalidRequestError(f"{key} must be an integer >= 1", param=key)
                options[key] = value
        if body.get("target_modules"):
            modules = body["target_modules"]
            if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
                raise InvalidRequestError("target_modules must be a list of module name suffixes",
                                          param="target_modules")
            options["target_modules"] = tuple(modules)
        engine = await run_in_threadpool(lambda: self.host.load_base(name, model, task, **options))
        return {"name": name, "model": model, "task": engine.task.value, "num_labels": engine.num_labels,
                "num_slots": engine.config.num_slots}

    async def unload_base(self, body: dict) -> dict:
        name = _required_str(body, "name")
        await run_in_threadpool(self.host.unload_base, name)
        return {"name": name, "unloaded": True}

    async def load_adapter(self, body: dict) -> dict:
        if "path" in body:
            raise InvalidRequestError("adapters are loaded by version id from the server's model root, not by"
                                      " path: send 'version' (the model version's hash)", param="path")
        name, version, sha256 = (_required_str(body, key) for key in ("name", "version", "sha256"))
        labels = body.get("labels")
        if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
            raise InvalidRequestError("labels must be a list of strings", param="labels")
        base = _optional_str(body, "base")
        return await run_in_threadpool(lambda: self.host.load_adapter(
            name, version=version, sha256=sha256, base=base, labels=labels, pin=bool(body.get("pin", False)),
            wait=bool(body.get("wait", True))))

    async def unload_adapter(self, body: dict) -> dict:
        name = _required_str(body, "name")
        await run_in_threadpool(lambda: self.host.unload_adapter(name, base=_optional_str(body, "base")))
        return {"name": name, "unloaded": True}

    async def pin_adapter(self, body: dict) -> dict:
        name = _required_str(body, "name")
        engine = self.host.route(base=_optional_str(body, "base"), adapter=name)
        info = await run_in_threadpool(engine.pin_adapter, name, bool(body.get("pinned", True)))
        return vars(info)

    # ------------------------------------------------------------------ inference
    async def classify(self, body: dict) -> dict:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            raise InvalidRequestError("input must be a string or a non-empty list of strings", param="input")
        adapter = _optional_str(body, "adapter")
        engine = self.host.route(base=_optional_str(body, "base"), adapter=adapter, task=Task.CLASSIFICATION)
        futures = await run_in_threadpool(lambda: [engine.submit_classify(t, adapter) for t in texts])
        waiting = [asyncio.wrap_future(f) for f in futures]
        try:
            results = await asyncio.gather(*waiting)
        finally:
            for future in futures:
                future.cancel()  # past the deadline: the engine drops what it has not run yet
        return {"adapter": adapter, "results": [vars(r) for r in results]}

    async def embeddings(self, body: dict) -> dict:
        texts, model, encoding = parse_request(body)
        vectors, identity, tokens = await run_in_threadpool(self.host.embed, texts, model)
        return embeddings_payload(vectors, identity, tokens, encoding=encoding, dimensions=body.get("dimensions"))

    async def generate(self, request: Request):
        deadline = time.monotonic() + self.request_timeout
        try:
            async with _deadline(deadline):
                body = await self._read_json(request)
                prompt, messages, rendered = body.get("prompt"), body.get("messages"), None
                adapter = _optional_str(body, "adapter")
                params = GenerationParams.from_dict(body)
                engine = self.host.route(base=_optional_str(body, "base"), adapter=adapter, task=Task.CAUSAL_LM)
                if messages is not None:
                    if prompt is not None:
                        raise InvalidRequestError("send either prompt or messages, not both", param="messages")
                    prompt = rendered = engine.chat_prompt(messages)
                stream = await run_in_threadpool(lambda: engine.submit_generate(
                    prompt, adapter=adapter, params=params, add_bos=bool(body.get("add_bos"))))
                if body.get("stream"):
                    return EventStream(stream, rendered, deadline, self._waits)
                try:
                    result = await asyncio.get_running_loop().run_in_executor(self._waits, stream.result)
                finally:
                    stream.cancel()  # no-op once finished; frees the slot when the deadline cut it short
                return JSONResponse(generation_payload(result, rendered))
        except EngineError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.http_status)
        except Exception:  # noqa: BLE001
            logger.exception("unhandled error on /v1/generate")
            return JSONResponse(error_body("internal error", "server_error"), status_code=500)


@contextlib.asynccontextmanager
async def _deadline(deadline: float):
    """Run the block until monotonic time ``deadline``; past it, cancel the block and raise RequestTimeoutError."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            yield
    except TimeoutError as exc:
        raise RequestTimeoutError("the request did not complete within the server's request timeout and was"
                                  " cancelled (raise --request-timeout, or ask for fewer tokens)") from exc


class EventStream:
    """ASGI response streaming one generation as server-sent events.

    A watcher reads the connection alongside: a client that goes away cancels the generation at once
    (its slot is freed at the next engine step) instead of at the next write."""

    def __init__(self, stream, rendered: str | None, deadline: float, waits: ThreadPoolExecutor) -> None:
        self.stream, self.rendered, self.deadline, self.waits = stream, rendered, deadline, waits

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        try:
            async with anyio.create_task_group() as group:
                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                async def produce() -> None:
                    try:
                        await self._produce(send)
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    finally:
                        group.cancel_scope.cancel()

                group.start_soon(watch)
                group.start_soon(produce)
        except OSError:
            pass  # the client left while we wrote
        finally:
            self.stream.cancel()  # a no-op once the generation finished

    async def _produce(self, send) -> None:
        loop, deltas = asyncio.get_running_loop(), iter(self.stream)
        try:
            with anyio.fail_after(max(0.0, self.deadline - time.monotonic())):
                while (delta := await loop.run_in_executor(self.waits, next, deltas, _END)) is not _END:
                    await _send_event(send, {"delta": delta})
                result = self.stream.result()
        except TimeoutError:
            error = RequestTimeoutError("the answer did not complete within the server's request timeout; the"
                                        " generation was cancelled")
            await _send_event(send, error.to_dict())
            return
        except EngineError as exc:
            await _send_event(send, exc.to_dict())
            return
        await _send_event(send, generation_payload(result, self.rendered))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})


async def _send_event(send, payload: dict) -> None:
    await send({"type": "http.response.body", "body": b"data: " + json.dumps(payload).encode() + b"\n\n",
                "more_body": True})


def generation_payload(result: GenerationResult, prompt: str | None = None) -> dict:
    payload = {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "adapter": result.adapter,
        "seed": result.seed,
        "slot": result.slot,
        "token_ids": list(result.token_ids),
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
    }
    if prompt is not None:
        payload["prompt"] = prompt  # the chat history as the model saw it
    return payload


def _required_str(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{key} must be a non-empty string", param=key)
    return value


def _optional_str(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError(f"{key} must be a string or null", param=key)
    return value
