"""Issue #17, item 3: models only where models belong. Receipts are computed by the attribution worker, which
owns the model and the index; a web worker answers paid inferences without ever importing torch.

The production web command (`gunicorn lineage.wsgi`, configured by gunicorn.conf.py: gthread workers, here
2 workers x 4 threads, `DEBUG=0`) serves the test database (`transaction=True`; the per-run SQLite file or
PostgreSQL, `process_support.test_database_url`), with what it needs beside it: the model server holding the
deployed MiniLM classifier and its adapter, Redis as broker (database 10) and a Celery worker consuming the
`attribution` and `default` queues. Paid chat completions (plain and streamed) run through it from four
client threads while every web worker's RSS is sampled from /proc every 50 ms and its memory map is checked
for torch's shared libraries (which any `import torch` maps).

Asserted: every answer carries a receipt id at once (`receipt_status` "queued"); the worker then stores each
receipt under that id and the fee is charged once; no web worker ever maps torch; the peak web-worker RSS stays
under 300 MB. The figures are printed (docs/reliability.md keeps them)."""

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
import redis
from faults_support import ROOT, CeleryWorker, ModelServer, free_port, wait_for
from process_support import test_database_url

from attribution.models import AttributionReceipt
from inference.client import ModelServerClient
from inference.deployments import DeploymentSync
from inference.models import InferenceRecord
from models_registry import services as registry_services
from rewards import services as rewards_services
from rewards.models import Settlement

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MB = 1024 * 1024
RSS_LIMIT = 300 * MB
BROKER = "redis://127.0.0.1:6379/10"
PRICE = 10**15
ANSWERS = 12
QUESTIONS = ["I was charged twice please help", "where is my parcel please help", "refund my payment please help",
             "the courier lost my package please help"]


def maps_torch(pid: int) -> bool:
    """Whether the process has torch's native libraries mapped (any `import torch` maps libtorch*)."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return any("libtorch" in line or "/torch/lib/" in line for line in maps)
    except FileNotFoundError:
        return False


class Sampler(threading.Thread):
    """RSS of each gunicorn worker (the master's children) every 50 ms, and whether any maps torch."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = psutil.Process(master)
        self.peak: dict[int, int] = {}
        self.torch: set[int] = set()
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for child in self.master.children():
                try:
                    rss = child.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                self.peak[child.pid] = max(rss, self.peak.get(child.pid, 0))
                if maps_torch(child.pid):
                    self.torch.add(child.pid)
            self.samples += 1
            self.stop.wait(0.05)


@pytest.fixture
def paid_model(alice, dora, publish, intent_rows, django_capture_on_commit_callbacks):
    """A MiniLM classifier fine-tuned on Dora's rows, its index built (in this process), priced and deployed."""
    version = publish(alice, intent_rows(2), contributor=dora)
    with django_capture_on_commit_callbacks(execute=True):
        job = registry_services.fine_tune_create(
            owner=alice, name="memory intents", base_model=registry_services.base_model_ensure_default(),
            datanet_versions=[version], epochs=1, batch_size=8, max_seq_length=24, eval_fraction=0.25)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    model = registry_services.model_version_update(version=job.model_version, actor=alice, price_per_inference=PRICE)
    model = registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)
    assert model.attribution_status == "ready"
    return model


@pytest.fixture
def stack(paid_model, settings, tmp_path):
    """Model server (adapter loaded), attribution worker, and gunicorn as production runs it."""
    redis.Redis.from_url(BROKER).flushdb()
    server = ModelServer(free_port(), tmp_path / "model-server.log").start()
    client = ModelServerClient(server.url, timeout=120)
    worker = web = None
    try:
        assert DeploymentSync(client).sync().loaded == [paid_model.slug]
        env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE",
                                                                               "INFERENCE_RECEIPTS_ASYNC")}
        env.update({
            "DATABASE_URL": test_database_url(), "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": BROKER,
            "CELERY_TASK_ALWAYS_EAGER": "0", "MEDIA_ROOT": str(settings.MEDIA_ROOT), "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "INFERENCE_SERVER_URL": server.url,
            "LINEAGE_VAR_DIR": str(tmp_path / "var"), "DEBUG": "0", "SECRET_KEY": "memory-" + "k" * 50,
            "SECURE_SSL_REDIRECT": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost", "API_KEY_RATE": "100000/min",
            "WEB_CONCURRENCY": "2", "WEB_THREADS": "4",
        })
        worker = CeleryWorker(env, tmp_path / "worker.log", "attribution,default").start()
        port = free_port()
        log = tmp_path / "gunicorn.log"
        with open(log, "ab") as fh:
            web = subprocess.Popen([sys.executable, "-m", "gunicorn", "lineage.wsgi", "--bind", f"127.0.0.1:{port}"],
                                   cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(up, 120, "gunicorn to answer", log, interval=0.3)
        yield {"base": base, "web": web, "worker": worker, "worker_log": tmp_path / "worker.log", "log": log}
    finally:
        client.close()
        if worker is not None:
            worker.stop()
        if web is not None:
            web.terminate()
            web.wait(timeout=30)
        server.stop()


def test_web_workers_answer_paid_inferences_without_torch_under_300_mb(stack, paid_model, charlie, api_key_for):
    rewards_services.credit_grant(actor=None, user=charlie, amount=ANSWERS * PRICE, reason="memory test")
    _, secret = api_key_for(charlie, "infer")
    headers = {"Authorization": f"Bearer {secret}"}
    sampler = Sampler(stack["web"].pid)
    sampler.start()
    workers_before = {child.pid for child in psutil.Process(stack["web"].pid).children()}
    assert len(workers_before) == 2

    def ask(n: int) -> dict:
        body = {"model": paid_model.slug, "messages": [{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}]}
        if n % 4 == 3:  # a streamed answer: the lineage extension comes with the last chunk
            body["stream"] = True
            with httpx.stream("POST", f"{stack['base']}/v1/chat/completions", json=body, headers=headers,
                              timeout=120) as response:
                assert response.status_code == 200
                chunks = [json.loads(line[6:]) for line in response.iter_lines()
                          if line.startswith("data: ") and line != "data: [DONE]"]
            return chunks[-1]["lineage"]
        response = httpx.post(f"{stack['base']}/v1/chat/completions", json=body, headers=headers, timeout=120)
        assert response.status_code == 200, response.text
        return response.json()["lineage"]

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(ask, range(ANSWERS)))
        answered_s = time.monotonic() - started
        # Receipts and fees arrive from the attribution worker, under the ids the answers carried.
        ids = {answer["inference_id"]: answer["receipt_id"] for answer in answers}
        wait_for(lambda: InferenceRecord.objects.filter(pk__in=list(ids), finished_at__isnull=False).count() == ANSWERS,
                 240, "the attribution worker to settle every answer", stack["worker_log"], interval=0.3)
        rewards_services.fees_settle_pending()  # what beat does every 5 s (the worker queued the first batch itself)
    finally:
        sampler.stop.set()
        sampler.join(10)

    assert all(answer["receipt_status"] == "queued" and answer["receipt_id"] for answer in answers), answers
    assert all(answer["fee"] == str(PRICE) for answer in answers)
    receipts = dict(AttributionReceipt.objects.filter(inference_id__in=list(ids)).values_list("inference_id",
                                                                                                "receipt_id"))
    assert receipts == ids  # each stored under the id its answer carried
    assert Settlement.objects.filter(inference_id__in=list(ids)).count() == ANSWERS  # each charged once
    for record in InferenceRecord.objects.filter(pk__in=list(ids)):
        assert (record.receipt_id, int(record.fee)) == (ids[str(record.pk)], PRICE)

    web_workers = set(sampler.peak)
    assert web_workers >= workers_before and sampler.samples > 10
    assert not sampler.torch, f"web workers {sorted(sampler.torch)} imported torch"
    assert not any(maps_torch(pid) for pid in workers_before if psutil.pid_exists(pid))
    assert maps_torch(stack["worker"].process.pid)  # the contrast: the attribution worker owns the model
    peak = max(sampler.peak.values())
    worker_rss = psutil.Process(stack["worker"].process.pid).memory_info().rss
    print(f"\nweb workers: peak RSS {peak / MB:.0f} MB (each: "
          f"{', '.join(f'{rss / MB:.0f}' for rss in sampler.peak.values())} MB) over {sampler.samples} samples; "
          f"{ANSWERS} paid answers in {answered_s:.1f} s; attribution worker RSS {worker_rss / MB:.0f} MB")
    assert peak < RSS_LIMIT, f"a web worker reached {peak / MB:.0f} MB"
