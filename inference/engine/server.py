"""A small stdlib HTTP server around one :class:`~.engine.ServingEngine`.

The Django app authenticates, meters and proxies to this process, so the server trusts its caller
and binds 127.0.0.1 by default. Endpoints (JSON in, JSON out):

- ``POST /v1/classify``  ``{"input": str | [str], "adapter": str | null}``
- ``POST /v1/generate``  ``{"prompt", "adapter", "max_tokens", "temperature", "top_p", "stop", "seed",
  "stream"}``; with ``"stream": true`` the answer is server-sent events: ``data: {"delta": ...}``
  per text delta, then ``data: {"finish_reason", "usage", ...}`` and ``data: [DONE]``.
- ``POST /v1/adapters/load`` ``{"name", "path", "sha256", "pin": false, "wait": true}``
- ``POST /v1/adapters/unload`` ``{"name"}``; ``POST /v1/adapters/pin`` ``{"name", "pinned": true}``
- ``GET /v1/stats``, ``GET /healthz``

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with the status of the
engine error. A client that disconnects mid-stream cancels its generation, which frees its slot.

Run: ``python -m inference.engine.server --model PATH --task causal_lm --slots 8 --port 8100``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from .engine import GenerationResult, ServingEngine, Task
from .errors import EngineError, InvalidRequestError
from .generation import GenerationParams

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 2**20


class EngineHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server holding the engine its handlers call."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: ServingEngine) -> None:
        self.engine = engine
        super().__init__(address, EngineRequestHandler)


class EngineRequestHandler(BaseHTTPRequestHandler):
    server: EngineHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s " + format, self.address_string(), *args)

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        routes = {"/healthz": self._healthz, "/v1/stats": lambda: self.server.engine.stats()}
        self._dispatch(routes, body=False)

    def do_POST(self) -> None:
        routes = {
            "/v1/classify": self._classify,
            "/v1/generate": self._generate,
            "/v1/adapters/load": self._load,
            "/v1/adapters/unload": self._unload,
            "/v1/adapters/pin": self._pin,
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
        return {"status": "ok", "task": self.server.engine.task.value}

    def _classify(self, body: dict) -> dict:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            raise InvalidRequestError("input must be a string or a non-empty list of strings", param="input")
        adapter = _optional_str(body, "adapter")
        results = self.server.engine.classify(texts, adapter=adapter)
        return {"adapter": adapter, "results": [dataclasses.asdict(r) for r in results]}

    def _generate(self, body: dict) -> dict | None:
        prompt = body.get("prompt")
        adapter = _optional_str(body, "adapter")
        params = GenerationParams.from_dict(body)
        stream = self.server.engine.submit_generate(prompt, adapter=adapter, params=params)
        if not body.get("stream"):
            return _generation_payload(stream.result())
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for delta in stream:
                self._send_event({"delta": delta})
            self._send_event(_generation_payload(stream.result()))
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
        info = self.server.engine.load_adapter(
            name, path, sha256, wait=bool(body.get("wait", True)), pin=bool(body.get("pin", False))
        )
        return dataclasses.asdict(info)

    def _unload(self, body: dict) -> dict:
        name = _required_str(body, "name")
        self.server.engine.unload_adapter(name)
        return {"name": name, "unloaded": True}

    def _pin(self, body: dict) -> dict:
        info = self.server.engine.pin_adapter(_required_str(body, "name"), bool(body.get("pinned", True)))
        return dataclasses.asdict(info)


def _generation_payload(result: GenerationResult) -> dict:
    return {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "adapter": result.adapter,
        "seed": result.seed,
        "token_ids": list(result.token_ids),
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
    }


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


def serve(engine: ServingEngine, host: str = "127.0.0.1", port: int = 8100) -> EngineHTTPServer:
    """Start the engine loop and bind a server (``port=0`` picks a free port); call
    ``serve_forever()`` on the result, ``shutdown()`` to stop."""
    engine.start()
    return EngineHTTPServer((host, port), engine)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve many LoRA adapters on one base model over HTTP.")
    parser.add_argument("--model", required=True, help="local directory of the base model and tokenizer")
    parser.add_argument("--task", choices=[t.value for t in Task], required=True)
    parser.add_argument("--slots", type=int, default=8, help="adapters resident on device at once")
    parser.add_argument("--max-rank", type=int, default=16)
    parser.add_argument("--max-batch-rows", type=int, default=32)
    parser.add_argument("--target-modules", nargs="*", default=None, help="LoRA target module suffixes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    engine = ServingEngine.from_pretrained(
        args.model, args.task, device=args.device, dtype=getattr(torch, args.dtype) if args.dtype else None,
        num_slots=args.slots, max_rank=args.max_rank, max_batch_rows=args.max_batch_rows,
        target_modules=tuple(args.target_modules) if args.target_modules else None,
    )
    server = serve(engine, args.host, args.port)
    logger.info("serving %s (%s) on http://%s:%d", args.model, args.task, *server.server_address[:2])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.close()


if __name__ == "__main__":
    main()
