"""The deployed web tier streams: every production command line runs gunicorn with threaded workers, the same
command in the Procfile, compose.yaml and the Dockerfile; the model server is reached only with its token."""

import json
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_gunicorn_runs_threaded_workers_and_no_command_line_overrides_them(monkeypatch):
    monkeypatch.delenv("WEB_THREADS", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    # An SSE answer holds a thread, not a worker: 3 workers x 32 threads serve 96 streams and page views at once.
    assert settings["worker_class"] == "gthread"
    assert settings["workers"] * settings["threads"] >= 96 and settings["timeout"] == 120
    monkeypatch.setenv("WEB_THREADS", "8")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["threads"] == 8
    # Procfile, compose.yaml and the Dockerfile all start `gunicorn lineage.wsgi`, which reads gunicorn.conf.py
    # from the working directory; none of them may swap the worker class or pin sync workers.
    for name in ("Procfile", "compose.yaml", "Dockerfile"):
        text = (ROOT / name).read_text()
        assert "gunicorn" in text and "lineage.wsgi" in text, name
        assert not re.search(r"(--worker-class|-k\b|--threads|--workers)", text), name


def _procfile(name: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in (ROOT / name).read_text().splitlines() if ":" in line)


def test_procfile_compose_and_dockerfile_start_the_same_web_command():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    dockerfile_cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    commands = {
        "Procfile": shlex.split(_procfile("Procfile")["web"].replace("${PORT:-8000}", "8000")),
        "compose.yaml": compose["web"]["command"],
        "Dockerfile": json.loads(dockerfile_cmd.removeprefix("CMD ")),
    }
    assert all(command == ["gunicorn", "lineage.wsgi", "--bind", "0.0.0.0:8000"] for command in commands.values()), \
        commands


def test_model_server_is_reached_only_by_its_network_with_the_shared_token_and_receipts_leave_the_web():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    server, web = compose["model-server"], compose["web"]
    # Outside compose a model server binds loopback unless told otherwise.
    assert "${INFERENCE_SERVER_HOST:-127.0.0.1}" in _procfile("Procfile")["model-server"]
    assert "--host 127.0.0.1" in _procfile("Procfile.dev")["model-server"]
    # In compose it binds its container's interfaces for the network, publishes no port and needs the token,
    # which compose refuses to start without, the same value as the web tier's.
    assert "ports" not in server and server["expose"] == ["8100"]
    assert server["environment"]["INFERENCE_SERVER_TOKEN"] == web["environment"]["INFERENCE_SERVER_TOKEN"]
    assert web["environment"]["INFERENCE_SERVER_TOKEN"].startswith("${INFERENCE_SERVER_TOKEN:?")
    assert web["environment"]["INFERENCE_SERVER_URL"] == "http://model-server:8100"
    # Receipts are queued to the attribution worker (the default); no deploy file turns that off.
    assert all("INFERENCE_RECEIPTS_ASYNC" not in service.get("environment", {}) for service in compose.values())
    for name in ("Procfile", "Dockerfile"):
        assert "INFERENCE_RECEIPTS_ASYNC" not in (ROOT / name).read_text(), name


def test_the_load_benchmark_runs_the_procfile_web_command_itself():
    # In a child process: bench/load.py puts bench/load/ on sys.path, which this process should not inherit.
    probe = "import json, runpy; print(json.dumps(runpy.run_path('bench/load.py')['web_command']()))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    web = _procfile("Procfile")["web"].strip()
    assert json.loads(result.stdout) == ["bash", "-c", "exec " + web.replace("0.0.0.0", "127.0.0.1")]
    assert "--bind 0.0.0.0:" in web  # the bind address is all the benchmark moves (to loopback)
