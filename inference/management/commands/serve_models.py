"""`python manage.py serve_models`: a model server and the deployment poller that keeps it loaded.

By default it starts a model server in this process (bound to `--host`, 127.0.0.1 unless told
otherwise, and `--port`, default the port of the first `INFERENCE_SERVER_URLS` entry), guarded by
`INFERENCE_SERVER_TOKEN` and loading from `INFERENCE_MODEL_ROOT`, then polls the database every
`INFERENCE_POLL_S` seconds: newly deployed model versions are hot-loaded (their base model's engine is
started on first need, one per base model and task) and undeployed ones unloaded.

With `--no-server` it runs only the poller, for every server in `INFERENCE_SERVER_URLS` (several model
servers started with `python -m inference.engine.server` on other machines, sharing the model root):
bases are placed on `INFERENCE_BASE_REPLICAS` servers each (0: all) and adapters loaded where their base
is; a server that joins or restarts is filled on the next poll.
"""

import logging
import signal
import threading
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

logger = logging.getLogger("inference")


class Command(BaseCommand):
    help = "Run the OpenLoRA model server and keep its adapters in step with the deployed model versions."

    def add_arguments(self, parser):
        from inference.client import split_urls

        first = urlparse((split_urls(settings.INFERENCE_SERVER_URL) or ["http://127.0.0.1:8100"])[0])
        parser.add_argument("--host", default="127.0.0.1",
                            help="bind address of the model server (any but loopback needs INFERENCE_SERVER_TOKEN)")
        parser.add_argument("--port", type=int, default=first.port or 8100)
        parser.add_argument("--poll", type=float, default=settings.INFERENCE_POLL_S, help="seconds between syncs")
        parser.add_argument("--device", default=settings.INFERENCE_DEVICE or None)
        parser.add_argument("--no-server", action="store_true",
                            help="run no server here: keep every server in INFERENCE_SERVER_URLS loaded")
        parser.add_argument("--once", action="store_true",
                            help="load every deployed model once, report, and exit (a deployment check)")

    def handle(self, *args, host, port, poll, device, no_server, once, **options):
        from inference.client import ModelServerClient, split_urls
        from inference.deployments import FleetSync

        if poll <= 0:
            raise CommandError("--poll must be a positive number of seconds")
        server = thread = None
        if no_server:
            urls = split_urls(settings.INFERENCE_SERVER_URL)
        else:
            server = self._start_server(host, port, device)
            thread = threading.Thread(target=server.serve_forever, name="model-server-http", daemon=True)
            thread.start()
            urls = [server.url]
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        clients = [ModelServerClient(url, token=settings.INFERENCE_SERVER_TOKEN, timeout=600.0) for url in urls]
        fleet = FleetSync(clients, replicas=settings.INFERENCE_BASE_REPLICAS)
        try:
            while not stop.is_set():
                if not once:
                    close_old_connections()  # a long-running poller must not hold a dead connection
                try:
                    report = fleet.sync()
                except Exception as exc:  # noqa: BLE001 - keep serving; the next poll retries
                    if once:
                        raise CommandError(f"deployment sync failed: {exc}") from exc
                    logger.exception("deployment sync failed")
                else:
                    self._report(report, len(urls))
                    if once:
                        loaded = sum(len(s.loaded) for s in fleet.syncs.values())
                        bases = sum(len(s.bases) for s in fleet.syncs.values())
                        self.stdout.write(f"{loaded} adapter(s) on {bases} base(s)")
                        break
                stop.wait(poll)
        finally:
            for client in clients:
                client.close()
            if server is not None:
                server.shutdown(timeout=settings.INFERENCE_SERVER_GRACE_S + 5)  # running answers finish first
                server.server_close()
                server.close_engines()
                thread.join(timeout=10)

    def _start_server(self, host, port, device):
        import torch

        from inference.deployments import engine_defaults
        from inference.engine.server import ServerConfigError, serve

        if settings.INFERENCE_MODEL_ROOT_MAX_BYTES < 0:
            raise CommandError("INFERENCE_MODEL_ROOT_MAX_BYTES must be a number of bytes >= 0 (0: no bound), not "
                               f"{settings.INFERENCE_MODEL_ROOT_MAX_BYTES}")
        if settings.INFERENCE_THREADS:
            torch.set_num_threads(settings.INFERENCE_THREADS)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            server = serve(None, host, port, device=device, engine_defaults=engine_defaults(),
                           model_root=settings.INFERENCE_MODEL_ROOT, token=settings.INFERENCE_SERVER_TOKEN,
                           model_root_max_bytes=settings.INFERENCE_MODEL_ROOT_MAX_BYTES,
                           request_timeout=settings.INFERENCE_SERVER_REQUEST_TIMEOUT_S,
                           keep_alive_timeout=settings.INFERENCE_SERVER_KEEPALIVE_S,
                           graceful_timeout=settings.INFERENCE_SERVER_GRACE_S)
        except ServerConfigError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        token = "required" if settings.INFERENCE_SERVER_TOKEN else "not set (loopback only)"
        self.stdout.write(f"model server on {server.url} ({device}; model root {server.host.store.root}; token {token})")
        return server

    def _report(self, report, servers: int) -> None:
        prefix = (lambda url: f"[{url}] ") if servers > 1 else (lambda url: "")
        for name, reason in report.failed.items():  # not servable anywhere: said once, not per server
            self.stderr.write(f"cannot serve {name}: {reason}")
        for url, why in report.down.items():
            self.stderr.write(f"{prefix(url)}model server down: {why}")
        for url, each in report.servers.items():
            for name in each.loaded:
                self.stdout.write(f"{prefix(url)}loaded {name}")
            for name in each.unloaded:
                self.stdout.write(f"{prefix(url)}unloaded {name}")
            for name, reason in each.failed.items():
                if name not in report.failed:
                    self.stderr.write(f"{prefix(url)}cannot serve {name}: {reason}")
