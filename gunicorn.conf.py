"""gunicorn settings, read from the working directory by `gunicorn lineage.wsgi` (Procfile, compose, Dockerfile).

Threaded workers (`gthread`): an answer streamed over SSE holds one thread, not a whole worker process, so
`WEB_CONCURRENCY` workers × `WEB_THREADS` threads serve that many streams and page views at once, and a
stream longer than `timeout` does not get its worker killed (the worker's main thread keeps reporting to the
master while request threads run). With sync workers three long streams blocked the site.

Prometheus across workers: each gunicorn worker is its own process with its own counters, so `/metrics`
answered by one worker would show only the requests that worker served. prometheus-client's multiprocess
mode keeps every worker's values in files under `PROMETHEUS_MULTIPROC_DIR` and sums them at scrape time
(`lineage.observability.scrape_registry`). The variable must be set before any worker imports
prometheus-client, which is why it is set here, at configuration time in the master, and not by the app.
"""

import glob
import os
import shutil
import tempfile

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "32"))
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
keepalive = 30

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_own_multiproc_dir = None
if not os.environ.get(_MULTIPROC_ENV):
    _own_multiproc_dir = tempfile.mkdtemp(prefix="lineage-prometheus-")
    os.environ[_MULTIPROC_ENV] = _own_multiproc_dir

# Imported here, after the variable is set, and not inside child_exit: the master runs that hook from its SIGCHLD
# handling, which can interrupt itself while a first import is half done ("cannot import name 'Gauge' from
# partially initialized module", seen when the full load run stopped its workers).
from prometheus_client import multiprocess as _prometheus_multiprocess  # noqa: E402


def on_starting(server):
    # Values left by an earlier run would be summed into this one's (prometheus-client asks for a wipe).
    directory = os.environ[_MULTIPROC_ENV]
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)


def child_exit(server, worker):
    # Counters and histograms of a dead worker stay in the sums; its live gauges must go.
    _prometheus_multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_multiproc_dir:
        shutil.rmtree(_own_multiproc_dir, ignore_errors=True)
