"""`python manage.py serve_models`: the model-server process (owns the models and the GPU).

Starts the engine HTTP server on `INFERENCE_SERVER_URL`'s host and port, then polls the database
every `INFERENCE_POLL_S` seconds: newly deployed model versions are hot-loaded (their base model's
engine is started on first need, one per base model and task) and undeployed ones unloaded.
"""

import logging
import signal
import threading
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

logger = logging.getLogger("inference")


class Command(BaseCommand):
    help = "Run the OpenLoRA model server and keep its adapters in step with the deployed model versions."

    def add_arguments(self, parser):
        url = urlparse(settings.INFERENCE_SERVER_URL)
        parser.add_argument("--host", default=url.hostname or "127.0.0.1")
        parser.add_argument("--port", type=int, default=url.port or 8100)
        parser.add_argument("--poll", type=float, default=settings.INFERENCE_POLL_S, help="seconds between syncs")
        parser.add_argument("--device", default=settings.INFERENCE_DEVICE or None)
        parser.add_argument("--once", action="store_true",
                            help="load every deployed model once, report, and exit (a deployment check)")

    def handle(self, *args, host, port, poll, device, once, **options):
        import torch

        from inference.engine.server import serve

        from ...client import ModelServerClient
        from ...deployments import DeploymentSync, engine_defaults

        if settings.INFERENCE_THREADS:
            torch.set_num_threads(settings.INFERENCE_THREADS)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        server = serve(None, host, port, device=device, engine_defaults=engine_defaults())
        bound = f"http://{server.server_address[0]}:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="model-server-http", daemon=True)
        thread.start()
        self.stdout.write(f"model server on {bound} ({device})")
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        client = ModelServerClient(bound, timeout=600.0)
        sync = DeploymentSync(client)
        try:
            while not stop.is_set():
                close_old_connections()
                try:
                    report = sync.sync()
                except Exception:  # noqa: BLE001 - keep serving; the next poll retries
                    logger.exception("deployment sync failed")
                else:
                    for name in report.loaded:
                        self.stdout.write(f"loaded {name}")
                    for name in report.unloaded:
                        self.stdout.write(f"unloaded {name}")
                    for name, reason in report.failed.items():
                        self.stderr.write(f"cannot serve {name}: {reason}")
                    if once:
                        self.stdout.write(f"{len(sync.loaded)} adapter(s) on {len(sync.bases)} base(s)")
                        break
                stop.wait(poll)
        finally:
            client.close()
            server.shutdown()
            server.server_close()
            server.close_engines()
