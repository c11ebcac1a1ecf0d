"""A task makes a real round trip through a separate worker process on the configured broker:
Redis in CI (CELERY_BROKER_URL), the filesystem broker on the embedded defaults."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker():
    log = ROOT / "var" / f"worker-test-{uuid.uuid4().hex[:8]}.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "lineage", "worker", "--pool", "solo", "-Q", "default",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
            cwd=ROOT, env={**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0"}, stdout=fh, stderr=subprocess.STDOUT,
        )
    yield process, log
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.unlink(missing_ok=True)


def test_task_round_trip_through_a_real_worker(worker, settings):
    from accounts.tasks import platform_ping
    from lineage.celery import app

    process, log = worker
    app.conf.task_always_eager = False
    token = uuid.uuid4().hex
    result = platform_ping.apply_async(args=[token])
    started = time.monotonic()
    try:
        value = result.get(timeout=90)
    except Exception:
        pytest.fail(f"worker did not answer within {time.monotonic() - started:.0f}s:\n{log.read_text()[-3000:]}")
    assert value["token"] == token
    assert value["worker_pid"] == process.pid  # ran in the worker, not in this process
    broker = settings.CELERY_BROKER_URL.split("://")[0]
    assert broker in log.read_text()


def test_each_task_goes_to_exactly_its_own_queue():
    """A queue declared by name alone binds to the default routing key, so a gpu task would also land
    in the default and chain queues and run three times. Each queue must have its own key."""
    from lineage.celery import app

    queues = {q.name: q for q in app.amqp.queues.values()}
    assert set(queues) == {"default", "gpu", "chain", "attribution"}
    assert len({(q.exchange.name, q.routing_key) for q in queues.values()}) == 4
    route = app.amqp.router.route({}, "models_registry.tasks.fine_tune_run_task")
    assert route["queue"].name == "gpu" and route["queue"].routing_key == "gpu"
    assert app.amqp.router.route({}, "rewards.tasks.chain_epoch_close")["queue"].name == "chain"
    assert app.amqp.router.route({}, "datanets.tasks.contribution_validate_task")["queue"].name == "default"
    # Queued receipts go to the worker that owns the models and indexes (lineage/celery.py).
    assert app.amqp.router.route({}, "inference.tasks.inference_settle_task")["queue"].name == "attribution"
