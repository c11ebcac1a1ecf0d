"""A model server inside this process, for the demo seed and the story test.

It is the same engine HTTP server that `manage.py serve_models` runs, on a free local port, with its
adapters loaded by the same `DeploymentSync`; the inference services reach it over HTTP exactly as
they reach the separate process under `make run`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.test.utils import override_settings


@dataclass
class InProcessModelServer:
    url: str
    sync: object  # () -> inference.deployments.SyncReport: load what is deployed now


@contextmanager
def model_server_in_process(*, device: str = "cpu") -> Iterator[InProcessModelServer]:
    """Start a model server, point `INFERENCE_SERVER_URL` at it, and stop it on exit."""
    from inference.client import ModelServerClient
    from inference.deployments import DeploymentSync, engine_defaults
    from inference.engine.server import serve

    server = serve(None, "127.0.0.1", 0, device=settings.INFERENCE_DEVICE or device, engine_defaults=engine_defaults())
    url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="demo-model-server", daemon=True)
    thread.start()
    client = ModelServerClient(url, timeout=600.0)
    try:
        with override_settings(INFERENCE_SERVER_URL=url):
            yield InProcessModelServer(url=url, sync=DeploymentSync(client).sync)
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        server.close_engines()
        thread.join(timeout=10)
