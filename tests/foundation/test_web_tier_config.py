"""The deployed web tier streams: every production command line runs gunicorn with threaded workers."""

import re
import runpy
from pathlib import Path

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
