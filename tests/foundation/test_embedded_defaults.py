"""The README's run command works on the embedded defaults: SQLite, the filesystem broker, local
media. This module runs Lineage in subprocesses with every server URL unset, whatever CI sets."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL", "CHAIN_RPC_URL")


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env["LINEAGE_VAR_DIR"] = str(tmp_path / "var")
    env["CELERY_TASK_ALWAYS_EAGER"] = "0"
    return env


def run(env, *args, timeout=300):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_migrate_seed_and_health_on_sqlite_and_filesystem_broker(embedded_env, tmp_path):
    run(embedded_env, "manage.py", "migrate", "--noinput")
    first = run(embedded_env, "manage.py", "seed_demo")
    second = run(embedded_env, "manage.py", "seed_demo")
    assert "admin@lineage.local" in first and first == second  # idempotent
    assert (tmp_path / "var" / "lineage.sqlite3").exists()

    probe = (
        "import django, json; django.setup();"
        "from django.test import Client; from django.conf import settings;"
        "r = Client().get('/healthz');"
        "print(json.dumps({'status': r.status_code, 'body': r.json(), 'db': settings.DATABASES['default']['ENGINE'],"
        " 'broker': settings.CELERY_BROKER_URL}))"
    )
    out = json.loads(run({**embedded_env, "DJANGO_SETTINGS_MODULE": "lineage.settings"}, "-c", probe).strip().splitlines()[-1])
    assert out["db"] == "django.db.backends.sqlite3"
    assert out["broker"] == "filesystem://"
    assert out["status"] == 200 and out["body"]["checks"]["broker"]["detail"] == "filesystem"


def test_filesystem_broker_round_trip(embedded_env, tmp_path):
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "lineage", "worker", "--pool", "solo", "-Q", "default",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=embedded_env, stdout=fh, stderr=subprocess.STDOUT,
        )
    try:
        token = uuid.uuid4().hex
        sender = (
            "import django, json; django.setup();"
            "from accounts.tasks import platform_ping;"
            f"print(json.dumps(platform_ping.apply_async(args=['{token}']).get(timeout=90)))"
        )
        started = time.monotonic()
        out = run({**embedded_env, "DJANGO_SETTINGS_MODULE": "lineage.settings"}, "-c", sender, timeout=150)
        value = json.loads(out.strip().splitlines()[-1])
        assert value["token"] == token and value["worker_pid"] == worker.pid, (time.monotonic() - started, log.read_text())
    finally:
        worker.terminate()
        worker.wait(timeout=20)
