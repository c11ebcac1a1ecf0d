"""The model-server process: uvicorn serving :mod:`.server_app` over the engines of an :class:`.EngineHost`.

Run: ``python -m inference.engine.server --model-root var/serving --port 8100`` (add ``--model PATH --task
causal_lm`` to start with a base; otherwise the deployment poller loads bases and adapters by id).

Facing a network:

- It binds 127.0.0.1 unless ``--host`` says otherwise.
- The token comes from ``INFERENCE_SERVER_TOKEN`` or the file named by ``INFERENCE_SERVER_TOKEN_FILE`` (or
  ``--token-file``), never the command line (where ``ps`` shows it). Every endpoint but ``/healthz`` then
  needs ``Authorization: Bearer <token>``. Without a token it listens only on a loopback address and
  refuses to start on any other.
- Loads name ids resolved inside the model root (:mod:`.model_store`), never caller paths. The root is
  kept under ``--model-root-max-bytes`` (default ``$INFERENCE_MODEL_ROOT_MAX_BYTES``, else 20 GiB; 0: no
  bound) by removing the least recently used adapters no server holds (:mod:`.pruning`).
- ``--request-timeout`` bounds each request (body, queue and generation); ``--keep-alive-timeout`` closes
  idle connections; on SIGTERM/SIGINT the server stops accepting, answers 503 to new requests on open
  connections, lets running answers finish for up to ``--graceful-timeout`` seconds, then exits.

The stdout line ``serving on http://HOST:PORT`` announces the bound address (``--port 0`` picks one).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

import torch
import uvicorn

from .engine import ServingEngine, Task
from .engine_host import DEFAULT_BASE, EngineHost
from .model_store import ModelStore
from .pruning import DEFAULT_MAX_BYTES
from .server_app import EngineApp

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "INFERENCE_SERVER_TOKEN"
ROOT_VARIABLE = "INFERENCE_MODEL_ROOT"
ROOT_MAX_VARIABLE = "INFERENCE_MODEL_ROOT_MAX_BYTES"


class ServerConfigError(ValueError):
    """A setting that makes the server unsafe or unable to start; the message says what to change."""


def token_from_environment(token_file: str | None = None) -> str:
    """The shared bearer token: ``token_file``, else ``$INFERENCE_SERVER_TOKEN_FILE``, else the variable."""
    path = token_file or os.environ.get(f"{TOKEN_VARIABLE}_FILE", "")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ServerConfigError(f"the token file {path} cannot be read: {exc}") from exc
    return os.environ.get(TOKEN_VARIABLE, "")


def default_model_root() -> Path:
    """``$INFERENCE_MODEL_ROOT``, else ``$LINEAGE_VAR_DIR/serving``, else ``var/serving`` (as settings do)."""
    if os.environ.get(ROOT_VARIABLE):
        return Path(os.environ[ROOT_VARIABLE])
    return Path(os.environ.get("LINEAGE_VAR_DIR") or "var") / "serving"


def default_model_root_max_bytes() -> int:
    """``$INFERENCE_MODEL_ROOT_MAX_BYTES`` (0: no bound), else 20 GiB (as settings do)."""
    raw = os.environ.get(ROOT_MAX_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    if not raw.isdigit():
        raise ServerConfigError(f"{ROOT_MAX_VARIABLE} must be a whole number of bytes (0: no bound), not {raw!r}")
    return int(raw)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the host when shutdown begins and not re-raising the signal afterwards
    (so whoever runs it can close the engines and exit normally)."""

    def __init__(self, config: uvicorn.Config, host: EngineHost) -> None:
        super().__init__(config)
        self.host = host

    def handle_exit(self, sig: int, frame) -> None:
        self.host.draining = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class EngineServer:
    """A bound model server. ``serve_forever()`` blocks (run it in a thread for an in-process server),
    ``shutdown()`` drains and stops it from another thread, ``server_close()`` releases the socket and
    ``close_engines()`` the models. The socket is bound in the constructor, so ``server_address`` is
    known (and connections queue) before serving starts."""

    def __init__(
        self, host: EngineHost, address: tuple[str, int], *, token: str | None = None,
        request_timeout: float = 300.0, keep_alive_timeout: float = 5.0, graceful_timeout: float = 30.0,
        owned_root: Path | None = None,
    ) -> None:
        bind_host, port = address
        token = token or None
        if token is None and not is_loopback(bind_host):
            raise ServerConfigError(
                f"refusing to listen on {bind_host} without a token: set {TOKEN_VARIABLE} (or {TOKEN_VARIABLE}_FILE)"
                " to the secret the web tier also has, or bind 127.0.0.1")
        self.host = host
        self.app = EngineApp(host, token=token, request_timeout=request_timeout)
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((bind_host, port))
        except OSError:
            self.socket.close()
            raise
        self.socket.listen(2048)
        self.server_address = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app.asgi, http="h11", ws="none", lifespan="off", interface="asgi3", log_config=None,
            access_log=False, proxy_headers=False, server_header=False,
            timeout_keep_alive=max(1, round(keep_alive_timeout)), timeout_graceful_shutdown=round(graceful_timeout),
        )
        self._server = _DrainingServer(config, host)
        self._stopped = threading.Event()
        self._started = False
        self._owned_root = owned_root

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # Names kept from the stdlib server this replaced: callers (the demo, tests) use them.
    @property
    def engines(self) -> dict[str, ServingEngine]:
        return self.host.engines

    @property
    def engine(self) -> ServingEngine | None:
        return self.host.engine

    def add_engine(self, name: str, engine: ServingEngine, *, path: str | None = None) -> ServingEngine:
        return self.host.add_engine(name, engine, path=path)

    def serve_forever(self) -> None:
        self._started = True
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain: stop accepting, refuse new requests, let running ones finish; returns once stopped."""
        self.host.draining = True
        self._server.should_exit = True
        if self._started:
            self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()
        self.app.close()
        if self._owned_root is not None:
            shutil.rmtree(self._owned_root, ignore_errors=True)

    def close_engines(self) -> None:
        self.host.close_engines()


def serve(
    engine: ServingEngine | dict[str, ServingEngine] | None, host: str = "127.0.0.1", port: int = 8100, *,
    device: str | None = None, dtype: torch.dtype | None = None, engine_defaults: dict | None = None,
    model_root: str | Path | None = None, token: str | None = None, model_root_max_bytes: int | None = None,
    **timeouts: float,
) -> EngineServer:
    """Start the engine loop(s) and bind a server (``port=0`` picks a free port); call ``serve_forever()``
    on the result. ``engine=None`` starts with no base (bases are loaded by id over ``/v1/bases/load``).

    ``token`` defaults to the environment's (see :func:`token_from_environment`); ``model_root`` to
    ``$INFERENCE_MODEL_ROOT``, else a temporary directory removed by ``server_close()``;
    ``model_root_max_bytes`` (None or 0: no bound) is the size the root is pruned to after each load."""
    engines = {DEFAULT_BASE: engine} if isinstance(engine, ServingEngine) else dict(engine or {})
    owned = None
    if model_root is None:
        if os.environ.get(ROOT_VARIABLE):
            model_root = os.environ[ROOT_VARIABLE]
        else:
            model_root = owned = Path(tempfile.mkdtemp(prefix="lineage-model-root-"))
    for each in engines.values():
        each.start()
    engine_host = EngineHost(engines, store=ModelStore(model_root, max_bytes=model_root_max_bytes), device=device,
                             dtype=dtype,
                             engine_defaults=engine_defaults)
    return EngineServer(engine_host, (host, port), token=token_from_environment() if token is None else token,
                        owned_root=owned, **timeouts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve many LoRA adapters on one or more base models over HTTP.")
    parser.add_argument("--model", help="local directory of a base model to start with (omit to start with no"
                        " base; the deployment poller loads bases by id from the model root)")
    parser.add_argument("--task", choices=[t.value for t in Task])
    parser.add_argument("--num-labels", type=int, default=None, help="classification head outputs (padded)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--slots", type=int, default=8, help="adapters resident on device at once")
    parser.add_argument("--max-rank", type=int, default=16)
    parser.add_argument("--max-batch-rows", type=int, default=32)
    parser.add_argument("--target-modules", nargs="*", default=None, help="LoRA target module suffixes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; any other needs a"
                        f" token in {TOKEN_VARIABLE})")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--model-root", type=Path, default=None,
                        help=f"where bases and adapters are loaded from (default ${ROOT_VARIABLE}, else var/serving)")
    parser.add_argument("--model-root-max-bytes", type=int, default=None,
                        help=f"prune the least recently used adapters no server holds to keep the model root under"
                        f" this size (default ${ROOT_MAX_VARIABLE}, else 20 GiB; 0: no bound)")
    parser.add_argument("--token-file", default=None, help=f"file holding the bearer token (else ${TOKEN_VARIABLE}"
                        f"_FILE or ${TOKEN_VARIABLE})")
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds one request may take")
    parser.add_argument("--keep-alive-timeout", type=float, default=5.0, help="seconds an idle connection is kept")
    parser.add_argument("--graceful-timeout", type=float, default=30.0,
                        help="seconds running answers get to finish after SIGTERM")
    args = parser.parse_args(argv)
    if args.model and not args.task:
        parser.error("--task is required with --model")
    for name in ("request_timeout", "keep_alive_timeout", "graceful_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if args.model_root_max_bytes is not None and args.model_root_max_bytes < 0:
        parser.error("--model-root-max-bytes must be a number of bytes >= 0 (0: no bound)")
    logging.basicConfig(level=logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    defaults = {"num_slots": args.slots, "max_rank": args.max_rank, "max_batch_rows": args.max_batch_rows}
    try:
        max_bytes = args.model_root_max_bytes
        max_bytes = default_model_root_max_bytes() if max_bytes is None else max_bytes
        token = token_from_environment(args.token_file)
        if not token and not is_loopback(args.host):  # checked before minutes of model loading
            raise ServerConfigError(f"refusing to listen on {args.host} without a token: set {TOKEN_VARIABLE} (or"
                                    f" {TOKEN_VARIABLE}_FILE, or --token-file), or bind 127.0.0.1")
        engine = None
        if args.model:
            engine = ServingEngine.from_pretrained(
                args.model, args.task, device=args.device, dtype=dtype, num_labels=args.num_labels, **defaults,
                target_modules=tuple(args.target_modules) if args.target_modules else None,
            )
        server = serve(engine, args.host, args.port, device=args.device, dtype=dtype, engine_defaults=defaults,
                       model_root=args.model_root or default_model_root(), token=token, model_root_max_bytes=max_bytes,
                       request_timeout=args.request_timeout, keep_alive_timeout=args.keep_alive_timeout,
                       graceful_timeout=args.graceful_timeout)
    except ServerConfigError as exc:
        parser.exit(2, f"model server: {exc}\n")
    except OSError as exc:
        parser.exit(2, f"model server: cannot listen on {args.host}:{args.port}: {exc}\n")
    # Tests and supervisors read this line to learn the bound port (``--port 0``).
    print(f"serving on {server.url}", flush=True)
    logger.info("serving %s on %s (model root %s, kept under %s; token %s)", args.model or "no base yet", server.url,
                server.host.store.root, server.host.store.max_bytes or "no bound",
                "required" if token else "not set: loopback only")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.close_engines()


if __name__ == "__main__":
    main()
