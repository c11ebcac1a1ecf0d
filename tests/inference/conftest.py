"""Serving fixtures: a real model-server process (the engine's HTTP server, started with no base model;
bases and adapters are loaded into it by `DeploymentSync`, exactly as `serve_models` does), Datanet
publishing and fine-tune helpers."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_server_url():
    """`python -m inference.engine.server` on a free port, with no base model loaded yet."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "inference.engine.server", "--port", "0", "--threads", "1", "--slots", "4",
         "--device", "cpu"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url, lines, deadline = None, [], time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("serving on "):
            url = line.split()[-1]
    if url is None:
        process.kill()
        pytest.fail("the model server did not start:\n" + "".join(lines))
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # keep the pipe drained
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def serving(settings, model_server_url):
    settings.INFERENCE_SERVER_URL = model_server_url
    settings.INFERENCE_SLOTS = 4
    from inference import answering

    answering._local.__dict__.clear()
    return model_server_url


@pytest.fixture
def sync(serving):
    """Load what is deployed into the model server, as serve_models' poll does."""
    from inference.client import ModelServerClient
    from inference.deployments import DeploymentSync

    client = ModelServerClient(serving, timeout=300)
    syncer = DeploymentSync(client)
    yield syncer.sync
    client.close()


@pytest.fixture
def fine_tune(django_capture_on_commit_callbacks):
    from models_registry import services

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            job = services.fine_tune_create(**kwargs)
        job.refresh_from_db()
        assert job.state == "succeeded", job.error
        return job.model_version

    return run


@pytest.fixture
def openai_client(live_server, api_key_for):
    import openai

    def make(user, *scopes):
        _, secret = api_key_for(user, *(scopes or ("infer",)))
        return openai.OpenAI(api_key=secret, base_url=f"{live_server.url}/v1", max_retries=0, timeout=120)

    return make
