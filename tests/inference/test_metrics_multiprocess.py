"""`/metrics` under gunicorn with several worker processes: every scrape, whichever worker answers it,
reports the requests served by all workers, labelled by adapter.

A real gunicorn (started as the Procfile starts it, picking up the repository's `gunicorn.conf.py`) serves
the test database; requests go to it concurrently on fresh connections, so several workers serve them."""

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from process_support import test_database_url
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
METRICS_TOKEN = "scrape-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _samples(text: str, name: str) -> dict[tuple, float]:
    """`{sorted label items: value}` of one sample name in a Prometheus exposition."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples if sample.name == name
    }


@pytest.fixture
def gunicorn(tmp_path):
    """`gunicorn lineage.wsgi --workers 3` on the test database; yields (url, multiprocess dir)."""
    port = _free_port()
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    (multiproc_dir / "counter_1.db").write_bytes(b"stale")  # left by an earlier run: must be wiped at start
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update({
        "DATABASE_URL": test_database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "INFERENCE_SERVER_URL": f"http://127.0.0.1:{_free_port()}",  # nothing listens: the scrape reports up 0
        "PYTHONUNBUFFERED": "1",
        "METRICS_TOKEN": METRICS_TOKEN,
    })
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "lineage.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
         "--timeout", "120"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("gunicorn exited:\n" + process.stdout.read())
        try:
            httpx.get(f"{url}/v1/models", timeout=5)
            break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("gunicorn did not answer within 120 s")
    yield url, multiproc_dir
    os.killpg(process.pid, signal.SIGTERM)  # the master and its workers (its own session)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_metrics_sum_every_worker_and_label_by_adapter(gunicorn, charlie, api_key_for):
    url, multiproc_dir = gunicorn
    assert not (multiproc_dir / "counter_1.db").exists()
    _, secret = api_key_for(charlie, "infer")
    headers = {"Authorization": f"Bearer {secret}"}

    def call(index: int) -> int:
        # A fresh connection per request, so the kernel hands them to whichever worker is free.
        model = "no-such-model" if index % 3 else "another-missing-model"
        response = httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=60,
                              json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        return response.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(call, range(30)))
    assert statuses == [404] * 30  # unknown models: an OpenAI error, recorded, never charged

    # The requests were really spread over several workers: each writes its own counter file.
    writers = {path.stem.split("_")[-1] for path in multiproc_dir.glob("counter_*.db")}
    assert len(writers) >= 2, writers

    expected = {
        (("adapter", "no-such-model"), ("endpoint", "chat.completions"), ("status", "failed")): 20.0,
        (("adapter", "another-missing-model"), ("endpoint", "chat.completions"), ("status", "failed")): 10.0,
    }
    for _ in range(2 * WORKERS):  # whichever worker answers the scrape, it reports all of them
        response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert _samples(text, "lineage_inference_requests_total") == expected
        assert _samples(text, "lineage_model_server_up") == {(): 0.0}
        # The operator metrics of `insights` (HTTP requests, by route) are summed over the workers too.
        http = _samples(text, "lineage_http_requests_total")
        assert sum(value for labels, value in http.items()
                   if ("method", "POST") in labels and ("status", "404") in labels) == 30.0
