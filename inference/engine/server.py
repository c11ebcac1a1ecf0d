"""A small stdlib HTTP server around one or more :class:`~.engine.ServingEngine` (one per base model).

The Django app authenticates, meters and proxies to this process, so the server trusts its caller
and binds 127.0.0.1 by default. One process can hold several engines ("bases", e.g. one per
distinct base model path and task); requests are routed by ``"base"`` when given, else to the
engine on which the named adapter is registered, else to the only engine. Endpoints (JSON in, JSON
out):

- ``POST /v1/classify``  ``{"input": str | [str], "adapter": str | null, "base": str | null}``
- ``POST /v1/generate``  ``{"prompt", "adapter", "base", "max_tokens", "temperature", "top_p", "stop",
  "seed", "add_bos", "stream"}``; with ``"stream": true`` the answer is server-sent events:
  ``data: {"delta": ...}`` per text delta, then ``data: {"finish_reason", "usage", ...}`` and
  ``data: [DONE]``. ``"messages": [{"role", "content"}, ...]`` instead of ``"prompt"`` sends a chat
  history, rendered by the base's tokenizer (:func:`.chat.render_chat`); the answer then carries the
  rendered ``"prompt"``.
- ``POST /v1/adapters/load`` ``{"name", "path", "sha256", "base", "labels", "pin": false, "wait": true}``
- ``POST /v1/adapters/unload`` ``{"name"}``; ``POST /v1/adapters/pin`` ``{"name", "pinned": true}``
- ``POST /v1/bases/load`` ``{"name", "path", "task", "num_slots", "max_rank", "num_labels", ...}``
  (idempotent: an existing base of that name is kept); ``POST /v1/bases/unload`` ``{"name"}``
- ``GET /v1/stats`` (the default engine's counters plus ``"bases": {name: stats}``), ``GET /healthz``

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with the status of the
engine error. A client that disconnects mid-stream cancels its generation, which frees its slot.

Run: ``python -m inference.engine.server --model PATH --task causal_lm --slots 8 --port 8100``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from .engine import GenerationResult, ServingEngine, Task
from .errors import AdapterNotFoundError, EngineCapacityError, EngineError, InvalidRequestError
from .generation import GenerationParams

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 2**20


DEFAULT_BASE = "default"


class EngineHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server holding the engines its handlers call.

    ``engine`` is one engine (registered as base ``"default"``), a ``{base name: engine}`` mapping,
    or ``None`` for a server whose bases are added later (``add_engine`` or ``POST /v1/bases/load``).
    ``device``/``dtype``/``engine_defaults`` apply to bases loaded over HTTP.
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], engine: ServingEngine | dict[str, ServingEngine] | None = None, *,
        device: str | None = None, dtype: torch.dtype | None = None, engine_defaults: dict | None = None,
    ) -> None:
        if isinstance(engine, ServingEngine):
            engines = {DEFAULT_BASE: engine}
        else:
            engines = dict(engine or {})
        self.engines: dict[str, ServingEngine] = engines
        self.base_info: dict[str, dict] = {name: {"path": None, "task": e.task.value} for name, e in engines.items()}
        self.device, self.dtype = device, dtype
        self.engine_defaults = dict(engine_defaults or {})
        self._bases_lock = threading.Lock()
        super().__init__(address, EngineRequestHandler)

    @property
    def engine(self) -> ServingEngine | None:
        """The first engine (the only one for a single-base server)."""
        return next(iter(self.engines.values()), None)

    def add_engine(self, name: str, engine: ServingEngine, *, path: str | None = None) -> ServingEngine:
        """Register (and start) an engine as base ``name``; an existing one of that name is kept."""
        with self._bases_lock:
            if name in self.engines:
                return self.engines[name]
            engine.start()
            self.engines = {**self.engines, name: engine}
            self.base_info[name] = {"path": path, "task": engine.task.value}
            return engine

    def load_base(self, name: str, path: str, task: str, **config: object) -> ServingEngine:
        """Load a base model from ``path`` into a new engine named ``name`` (idempotent by name)."""
        with self._bases_lock:
            existing = self.engines.get(name)
        if existing is not None:
            return existing
        options = {**self.engine_defaults, **{k: v for k, v in config.items() if v is not None}}
        try:
            engine = ServingEngine.from_pretrained(path, task, device=self.device, dtype=self.dtype, **options)
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidRequestError(f"base {name!r} could not be loaded from {path}: {exc}", param="path") from exc
        kept = self.add_engine(name, engine, path=path)
        if kept is not engine:
            engine.close()
        return kept

    def unload_base(self, name: str) -> None:
        with self._bases_lock:
            engine = self.engines.get(name)
            if engine is None:
                raise AdapterNotFoundError(f"base {name!r} is not loaded", param="base")
            self.engines = {k: v for k, v in self.engines.items() if k != name}
            self.base_info.pop(name, None)
        engine.close()

    def route(self, *, base: str | None, adapter: str | None, task: Task | None = None) -> ServingEngine:
        """The engine a request goes to (see the module docstring)."""
        engines = self.engines
        if base is not None:
            if base not in engines:
                raise AdapterNotFoundError(f"base {base!r} is not loaded", param="base")
            return engines[base]
        if adapter is not None:
            for engine in engines.values():
                if engine.has_adapter(adapter):
                    return engine
            raise AdapterNotFoundError(f"adapter {adapter!r} is not loaded", param="adapter")
        candidates = [e for e in engines.values() if task is None or e.task is task] or list(engines.values())
        if not candidates:
            raise EngineCapacityError("no base model is loaded")
        return candidates[0]

    def close_engines(self) -> None:
        for engine in list(self.engines.values()):
            engine.close()


class EngineRequestHandler(BaseHTTPRequestHandler):
    server: EngineHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s " + format, self.address_string(), *args)

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        routes = {"/healthz": self._healthz, "/v1/stats": self._stats}
        self._dispatch(routes, body=False)

    def do_POST(self) -> None:
        routes = {
            "/v1/classify": self._classify,
            "/v1/generate": self._generate,
            "/v1/adapters/load": self._load,
            "/v1/adapters/unload": self._unload,
            "/v1/adapters/pin": self._pin,
            "/v1/bases/load": self._load_base,
            "/v1/bases/unload": self._unload_base,
        }
        self._dispatch(routes, body=True)

    def _dispatch(self, routes: dict, *, body: bool) -> None:
        handler = routes.get(self.path.split("?", 1)[0])
        try:
            if handler is None:
                self._send_json(HTTPStatus.NOT_FOUND, _error_body(f"no route {self.path}", "not_found_error"))
                return
            payload = handler(self._read_json()) if body else handler()
            if payload is not None:
                self._send_json(HTTPStatus.OK, payload)
        except EngineError as exc:
            self._send_json(exc.http_status, exc.to_dict())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left; nothing to answer
        except Exception:  # noqa: BLE001 - one bad request must not take the server down
            logger.exception("unhandled error on %s", self.path)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, _error_body("internal error", "server_error"))

    def _read_json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise InvalidRequestError("request body too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequestError("body must be a JSON object")
        return body

    def _send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # ------------------------------------------------------------------ endpoints
    def _healthz(self) -> dict:
        engine = self.server.engine
        bases = {name: info["task"] for name, info in self.server.base_info.items()}
        if len(bases) <= 1:
            return {"status": "ok", "task": None if engine is None else engine.task.value}
        return {"status": "ok", "task": None, "bases": bases}

    def _stats(self) -> dict:
        server = self.server
        bases = {name: {**engine.stats(), **server.base_info.get(name, {})} for name, engine in server.engines.items()}
        default = next(iter(bases.values()), {})
        return {**default, "bases": bases}

    def _load_base(self, body: dict) -> dict:
        name, path, task = (_required_str(body, key) for key in ("name", "path", "task"))
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
            options["target_modules"] = tuple(body["target_modules"])
        engine = self.server.load_base(name, path, task, **options)
        return {"name": name, "task": engine.task.value, "num_labels": engine.num_labels,
                "num_slots": engine.config.num_slots}

    def _unload_base(self, body: dict) -> dict:
        name = _required_str(body, "name")
        self.server.unload_base(name)
        return {"name": name, "unloaded": True}

    def _classify(self, body: dict) -> dict:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            raise InvalidRequestError("input must be a string or a non-empty list of strings", param="input")
        adapter = _optional_str(body, "adapter")
        engine = self.server.route(base=_optional_str(body, "base"), adapter=adapter, task=Task.CLASSIFICATION)
        results = engine.classify(texts, adapter=adapter)
        return {"adapter": adapter, "results": [dataclasses.asdict(r) for r in results]}

    def _generate(self, body: dict) -> dict | None:
        prompt, messages, rendered = body.get("prompt"), body.get("messages"), None
        adapter = _optional_str(body, "adapter")
        params = GenerationParams.from_dict(body)
        engine = self.server.route(base=_optional_str(body, "base"), adapter=adapter, task=Task.CAUSAL_LM)
        if messages is not None:
            if prompt is not None:
                raise InvalidRequestError("send either prompt or messages, not both", param="messages")
            prompt = rendered = engine.chat_prompt(messages)
        stream = engine.submit_generate(prompt, adapter=adapter, params=params, add_bos=bool(body.get("add_bos")))
        if not body.get("stream"):
            return _generation_payload(stream.result(), rendered)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for delta in stream:
                self._send_event({"delta": delta})
            self._send_event(_generation_payload(stream.result(), rendered))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            stream.cancel()  # the engine retires the row and unlocks its slot at the next step
        except EngineError as exc:
            stream.cancel()
            self._send_event(exc.to_dict())
        return None

    def _send_event(self, payload: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()

    def _load(self, body: dict) -> dict:
        name, path, sha256 = (_required_str(body, key) for key in ("name", "path", "sha256"))
        base = _optional_str(body, "base")
        labels = body.get("labels")
        if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
            raise InvalidRequestError("labels must be a list of strings", param="labels")
        if base is None:
            if len(self.server.engines) > 1:
                raise InvalidRequestError("several bases are loaded: name the adapter's base", param="base")
            engine = self.server.route(base=None, adapter=None)
        else:
            engine = self.server.route(base=base, adapter=None)
        for other_name, other in self.server.engines.items():
            if other is not engine and other.has_adapter(name):
                raise InvalidRequestError(f"adapter {name!r} is already loaded on base {other_name!r}", param="name")
        info = engine.load_adapter(
            name, path, sha256, wait=bool(body.get("wait", True)), pin=bool(body.get("pin", False)), labels=labels,
        )
        return {**dataclasses.asdict(info), "base": self._base_name(engine)}

    def _base_name(self, engine: ServingEngine) -> str | None:
        return next((name for name, e in self.server.engines.items() if e is engine), None)

    def _unload(self, body: dict) -> dict:
        name = _required_str(body, "name")
        self.server.route(base=_optional_str(body, "base"), adapter=name).unload_adapter(name)
        return {"name": name, "unloaded": True}

    def _pin(self, body: dict) -> dict:
        name = _required_str(body, "name")
        engine = self.server.route(base=_optional_str(body, "base"), adapter=name)
        info = engine.pin_adapter(name, bool(body.get("pinned", True)))
        return dataclasses.asdict(info)


def _generation_payload(result: GenerationResult, prompt: str | None = None) -> dict:
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


def _error_body(message: str, error_type: str) -> dict:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


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


def serve(
    engine: ServingEngine | dict[str, ServingEngine] | None, host: str = "127.0.0.1", port: int = 8100, **options
) -> EngineHTTPServer:
    """Start the engine loop(s) and bind a server (``port=0`` picks a free port); call
    ``serve_forever()`` on the result, ``shutdown()`` to stop. ``engine=None`` starts with no base:
    bases are loaded later over ``POST /v1/bases/load``."""
    engines = {DEFAULT_BASE: engine} if isinstance(engine, ServingEngine) else dict(engine or {})
    for each in engines.values():
        each.start()
    return EngineHTTPServer((host, port), engines, **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve many LoRA adapters on one base model over HTTP.")
    parser.add_argument("--model", help="local directory of the base model and tokenizer (omit to start with no"
                        " base and load bases over POST /v1/bases/load)")
    parser.add_argument("--task", choices=[t.value for t in Task])
    parser.add_argument("--num-labels", type=int, default=None, help="classification head outputs (padded)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--slots", type=int, default=8, help="adapters resident on device at once")
    parser.add_argument("--max-rank", type=int, default=16)
    parser.add_argument("--max-batch-rows", type=int, default=32)
    parser.add_argument("--target-modules", nargs="*", default=None, help="LoRA target module suffixes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args(argv)
    if args.model and not args.task:
        parser.error("--task is required with --model")
    logging.basicConfig(level=logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    defaults = {"num_slots": args.slots, "max_rank": args.max_rank, "max_batch_rows": args.max_batch_rows}
    engine = None
    if args.model:
        engine = ServingEngine.from_pretrained(
            args.model, args.task, device=args.device, dtype=dtype, num_labels=args.num_labels, **defaults,
            target_modules=tuple(args.target_modules) if args.target_modules else None,
        )
    server = serve(engine, args.host, args.port, device=args.device, dtype=dtype, engine_defaults=defaults)
    # Tests and supervisors read this line to learn the bound port (``--port 0``).
    print(f"serving on http://{server.server_address[0]}:{server.server_address[1]}", flush=True)
    logger.info("serving %s (%s) on http://%s:%d", args.model or "no base yet", args.task, *server.server_address[:2])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.close_engines()


if __name__ == "__main__":
    main()
