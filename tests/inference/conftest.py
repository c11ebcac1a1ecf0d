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
def model_server_url(tmp_path_factory):
    """`python -m inference.engine.server` on a free port, with no base model loaded yet (`sync` publishes
    into its own model root)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "inference.engine.server", "--port", "0", "--threads", "1", "--slots", "4",
         "--device", "cpu", "--model-root", str(tmp_path_factory.mktemp("model-root"))],
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
def causal_sums_model(tmp_path, alice, publish, fine_tune, sync):
    """A tiny Llama fine-tuned on "What is a plus b?" instruction rows, deployed free (price 0) and loaded by the
    model server: ``(model version, path of the base model)``."""
    from models_registry import services as registry_services
    from models_registry.models import BaseModel
    from models_registry.training import build_tiny_causal_model

    rows = [{"prompt": f"What is {a} plus {b}?", "response": f"{a + b}"} for a in range(6) for b in range(6)]
    path = build_tiny_causal_model(tmp_path / "tiny-llama", [f"{r['prompt']} {r['response']}" for r in rows],
                                   arch="llama", seed=0)
    base = BaseModel.objects.create(name="Tiny Llama", slug="tiny-llama", source_kind="path", source_ref=str(path),
                                    architecture="llama", task_types=["instruction", "text"])
    version = publish(alice, rows, task_type="instruction", labels=(), name="Sums")
    model = fine_tune(owner=alice, name="sums", base_model=base, datanet_versions=[version], epochs=2, batch_size=8,
                      max_seq_length=48, eval_fraction=0.2)
    registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)
    assert sync().loaded == [model.slug]
    return model, path


@pytest.fixture
def openai_client(live_server, api_key_for):
    import openai

    def make(user, *scopes):
        _, secret = api_key_for(user, *(scopes or ("infer",)))
        return openai.OpenAI(api_key=secret, base_url=f"{live_server.url}/v1", max_retries=0, timeout=120)

    return make
