"""A worker killed (SIGKILL) in the middle of a fine-tune: the broker redelivers the unacknowledged
task to another worker, which resumes from the last checkpoint and registers the model version once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from process_support import test_database_url

from lineage.celery import app as celery_app
from models_registry import services
from models_registry.models import FineTuneJob, JobState, ModelVersion
from models_registry.tasks import fine_tune_run_task

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/14"  # its own database, emptied first: nothing else's messages


def database_url() -> str:
    return test_database_url()


def start_worker(env, log: Path):
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "lineage", "worker", "--pool", "solo", "-Q", "gpu",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )


def wait_for(predicate, timeout, what, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def test_killed_worker_mid_training_resumes_and_finishes_once(alice, intent_rows, publish, settings, tmp_path,
                                                              monkeypatch):
    version = publish(alice, intent_rows())
    # The job's one delivery goes to this test's own broker below, not to the configured one.
    monkeypatch.setattr(fine_tune_run_task, "delay_on_commit", lambda *args, **kwargs: None)
    job = services.fine_tune_create(
        owner=alice, name="survivor", base_model=services.base_model_ensure_default(), datanet_versions=[version],
        # 720 steps: long enough that the kill lands mid-run on a fast machine too.
        epochs=40, batch_size=2, max_seq_length=16, eval_fraction=0.25, learning_rate=1e-3,
    )
    redis.Redis.from_url(BROKER).flushdb()
    env = {
        **os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "0", "CELERY_VISIBILITY_TIMEOUT_S": "5", "TRAINING_CHECKPOINT_EVERY_STEPS": "5",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT), "TRAINING_WORK_DIR": str(settings.TRAINING_WORK_DIR),
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    second = None
    try:
        celery_app.conf.task_always_eager = False  # the conftest default; this task goes to the broker
        with celery_app.connection_for_write(BROKER) as conn:
            fine_tune_run_task.apply_async(args=[job.pk], connection=conn, queue="gpu")
        wait_for(lambda: FineTuneJob.objects.get(pk=job.pk).step >= 10, 300, "training to pass a checkpoint", log)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        killed_at = FineTuneJob.objects.get(pk=job.pk)
        assert killed_at.state == JobState.RUNNING and killed_at.attempts == 1

        second = start_worker(env, log)
        wait_for(lambda: not FineTuneJob.objects.get(pk=job.pk).is_active, 420, "the redelivered job to finish", log)
    finally:
        for worker in (first, second):
            if worker and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error + log.read_text()[-3000:]
    assert job.attempts == 2
    assert job.resumed_from_step and job.resumed_from_step >= 5  # it did not start over
    assert ModelVersion.objects.filter(job=job).count() == 1
