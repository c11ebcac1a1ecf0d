"""Locust users for Lineage's load test (run by bench/load.py, which seeds the data and starts the servers).

* Contributors browse the public pages and the API, upload rows and poll their contribution.
* Curators work the review queue: read pending rows, accept a page of them.
* API users call the OpenAI-compatible endpoint (a paid classifier: every answer carries a receipt and a fee).
* Streaming clients (`StreamingChat`, exactly LINEAGE_LOAD_STREAMS of them, spawned before everyone else) each
  hold one streamed chat completion (`stream: true`, a paid tiny Llama) open, and open the next one the moment
  it ends, for the whole run. Each stream is timed to its first byte, its first token and its `[DONE]`; a
  stream that ends without its finished chunk (with `lineage`) and `[DONE]`, or with an error event, fails.

When locust quits (after the users still running at the end have finished, `--stop-timeout`), every endpoint's
figures, the failures and how many streams were open at once are written as JSON to LINEAGE_LOAD_RESULTS (the
CSV files stop at the end of `--run-time` and would miss the streams that finish after it).

Every user authenticates with its own API key (`Authorization: Bearer`), read from the seed file named by
LINEAGE_LOAD_SEED. Any answer other than the expected status, or a body that is not the expected JSON, is
a failure.
"""

import itertools
import json
import os
import random
import time
import uuid

from locust import HttpUser, between, constant, events, task

SEED = json.loads(open(os.environ["LINEAGE_LOAD_SEED"]).read())
_turns = {kind: itertools.count() for kind in ("contributors", "curators", "api_users", "stream_users")}
STREAMS = int(os.environ.get("LINEAGE_LOAD_STREAMS", "0"))
STREAM_TOKENS = int(os.environ.get("LINEAGE_LOAD_STREAM_TOKENS", "64"))
QUESTIONS = ["I was charged twice for my plan", "my parcel never arrived", "refund the extra fee please",
             "the courier left the box at the wrong house", "why is my invoice so high", "tracking has not moved"]


def _key(kind: str) -> str:
    keys = SEED[kind]
    return keys[next(_turns[kind]) % len(keys)]


class _KeyedUser(HttpUser):
    abstract = True
    kind = ""

    def on_start(self):
        self.client.headers["Authorization"] = f"Bearer {_key(self.kind)}"
        self.datanet = SEED["datanet"]

    def get_json(self, path, name=None, expect=200):
        with self.client.get(path, name=name or path, catch_response=True) as response:
            return self._check(response, expect)

    def _check(self, response, expect):
        if response.status_code != expect:
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            return None
        try:
            return response.json()
        except ValueError:
            response.failure("not JSON")
            return None


class Contributor(_KeyedUser):
    weight = 6
    kind = "contributors"
    wait_time = between(1, 3)

    @task(3)
    def browse_pages(self):
        for path, name in ((f"/datanets/{self.datanet}/", "page /datanets/[slug]/"),
                           (f"/datanets/{self.datanet}/rows/", "page /datanets/[slug]/rows/"), ("/datanets/", None)):
            with self.client.get(path, name=name or "page /datanets/", catch_response=True) as response:
                if response.status_code != 200 or "<html" not in response.text[:500].lower():
                    response.failure(f"HTTP {response.status_code}")

    @task(3)
    def browse_api(self):
        self.get_json("/api/v1/datanets/")
        self.get_json(f"/api/v1/datanets/{self.datanet}/records/?status=accepted&page_size=20",
                      name="/api/v1/datanets/[slug]/records/?status=accepted")

    @task(2)
    def upload_and_poll(self):
        rows = [{"text": f"{random.choice(QUESTIONS)} ref {uuid.uuid4().hex[:12]}",
                 "label": random.choice(["billing", "shipping"])} for _ in range(5)]
        with self.client.post(f"/api/v1/datanets/{self.datanet}/contributions/", json={"rows": rows},
                              name="/api/v1/datanets/[slug]/contributions/ (upload)", catch_response=True) as response:
            created = self._check(response, 202)
        if created:
            self.get_json(f"/api/v1/datanets/{self.datanet}/contributions/{created['id']}/",
                          name="/api/v1/datanets/[slug]/contributions/[id]/")

    @task(1)
    def my_contributions(self):
        self.get_json(f"/api/v1/datanets/{self.datanet}/contributions/",
                      name="/api/v1/datanets/[slug]/contributions/ (list)")


class Curator(_KeyedUser):
    weight = 2
    kind = "curators"
    wait_time = between(2, 5)

    @task(3)
    def review_page(self):
        page = self.get_json(f"/api/v1/datanets/{self.datanet}/records/?status=pending&page_size=20",
                             name="/api/v1/datanets/[slug]/records/?status=pending")
        ids = [row["id"] for row in (page or {}).get("results", [])][:10]
        if ids:
            with self.client.post(f"/api/v1/datanets/{self.datanet}/records/review/",
                                  json={"record_ids": ids, "decision": "accept", "reason": ""},
                                  name="/api/v1/datanets/[slug]/records/review/", catch_response=True) as response:
                self._check(response, 200)

    @task(1)
    def contributions(self):
        self.get_json(f"/api/v1/datanets/{self.datanet}/contributions/",
                      name="/api/v1/datanets/[slug]/contributions/ (list)")


class ApiUser(_KeyedUser):
    weight = 3
    kind = "api_users"
    wait_time = between(1, 3)

    @task(4)
    def chat_completion(self):
        body = {"model": SEED["model"], "messages": [{"role": "user", "content": random.choice(QUESTIONS)}]}
        with self.client.post("/v1/chat/completions", json=body, catch_response=True) as response:
            answer = self._check(response, 200)
            if answer and not (answer.get("choices") and answer.get("lineage", {}).get("inference_id")):
                response.failure("answer without choices or lineage")

    @task(1)
    def models(self):
        self.get_json("/v1/models")


class _OpenStreams:
    """How many streams are open at once, over time (time-weighted, from when all of them first were)."""

    def __init__(self) -> None:
        self.open = self.peak = self.started = self.finished = 0
        self.completed = self.tokens = 0  # streams that ended well, and their completion tokens (usage)
        self.changes: list[tuple[float, int]] = []
        self.stopped_at: float | None = None

    def change(self, by: int) -> None:
        self.open += by
        self.peak = max(self.peak, self.open)
        self.changes.append((time.monotonic(), self.open))

    def summary(self) -> dict:
        end = self.stopped_at or time.monotonic()
        full = next((t for t, n in self.changes if n >= STREAMS), None) if STREAMS else None
        weighted = at_all = 0.0
        if full is not None and end > full:
            points = [(t, n) for t, n in self.changes if full <= t <= end]
            for (t, n), (t_next, _) in zip(points, points[1:] + [(end, 0)], strict=True):
                weighted += n * (t_next - t)
                at_all += (t_next - t) if n >= STREAMS else 0.0
        window = (end - full) if full is not None else 0.0
        return {"clients": STREAMS, "peak_open": self.peak, "started": self.started, "finished": self.finished,
                "completed": self.completed,
                "mean_completion_tokens": round(self.tokens / self.completed, 1) if self.completed else None,
                "seconds_from_all_open_to_stop": round(window, 1),
                "mean_open": round(weighted / window, 2) if window > 0 else None,
                "share_of_time_all_open": round(at_all / window, 3) if window > 0 else None}


OPEN_STREAMS = _OpenStreams()


@events.test_stop.add_listener
def _note_stop(**_kwargs) -> None:
    OPEN_STREAMS.stopped_at = time.monotonic()


def _entry(entry) -> dict:
    def at(share):
        return entry.get_response_time_percentile(share) if entry.num_requests else None

    return {"method": entry.method or "", "endpoint": entry.name, "requests": entry.num_requests,
            "failures": entry.num_failures, "rps": round(entry.total_rps, 2), "p50_ms": at(0.5), "p95_ms": at(0.95),
            "p99_ms": at(0.99), "mean_ms": round(entry.avg_response_time, 1)}


@events.quitting.add_listener
def _write_results(environment, **_kwargs) -> None:
    path = os.environ.get("LINEAGE_LOAD_RESULTS")
    if not path:
        return
    stats = environment.stats
    results = {"endpoints": [_entry(e) for e in stats.entries.values()], "total": _entry(stats.total),
               "failures": [{"method": e.method, "endpoint": e.name, "error": str(e.error)[:300],
                             "occurrences": e.occurrences} for e in stats.errors.values()],
               "streams": OPEN_STREAMS.summary()}
    with open(path, "w") as fh:
        json.dump(results, fh)


class StreamingChat(_KeyedUser):
    """One streaming client: a streamed chat completion open at all times (the next one as soon as one ends)."""

    kind = "stream_users"
    fixed_count = STREAMS
    wait_time = constant(0)

    def _record(self, name: str, started: float, error: str | None = None, length: int = 0) -> None:
        self.environment.events.request.fire(
            request_type="SSE", name=name, response_time=(time.perf_counter() - started) * 1e3,
            response_length=length, exception=Exception(error) if error else None, context={})

    @task
    def stream_chat(self):
        body = {"model": SEED["stream_model"], "messages": [{"role": "user", "content": random.choice(QUESTIONS)}],
                "stream": True, "stream_options": {"include_usage": True}, "max_tokens": STREAM_TOKENS,
                # Sampled hot, so a tiny model trained for one epoch rarely stops before max_tokens.
                "temperature": 2.0, "seed": random.randrange(2**31)}
        started, error, received, tokens = time.perf_counter(), None, 0, 0
        OPEN_STREAMS.started += 1
        OPEN_STREAMS.change(+1)
        try:
            response = self.client.post("/v1/chat/completions", json=body, stream=True, name="stream: headers")
            if response.status_code != 200:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
            else:
                error, received, tokens = self._read(response, started)
                if not error:
                    OPEN_STREAMS.completed += 1
                    OPEN_STREAMS.tokens += tokens
        except Exception as exc:  # noqa: BLE001 - a broken stream is a failed request, reported as such
            error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            OPEN_STREAMS.change(-1)
            OPEN_STREAMS.finished += 1
            self._record("stream: complete ([DONE])", started, error, received)
        if error:
            time.sleep(1)  # gevent's sleep (locust patches it): a failing server is not hammered in a tight loop

    def _read(self, response, started: float) -> tuple[str | None, int, int]:
        """Read one stream to its end: (what was wrong with it or None, bytes received, completion tokens)."""
        first_byte = first_token = done = finished_chunk = False
        error, received, tokens = None, 0, 0
        try:  # (not `with response`: locust keeps with-blocks for catch_response)
            for line in response.iter_lines(chunk_size=None):
                received += len(line) + 1
                if not first_byte:
                    first_byte = True
                    self._record("stream: first byte", started)
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    done = True
                    break
                event = json.loads(line[6:])
                tokens = (event.get("usage") or {}).get("completion_tokens", tokens)
                if "error" in event:
                    error = f"error event: {event['error'].get('code')}: {event['error'].get('message', '')[:150]}"
                for choice in event.get("choices") or []:
                    if choice.get("delta", {}).get("content") and not first_token:
                        first_token = True
                        self._record("stream: first token", started)
                    if choice.get("finish_reason") and event.get("lineage", {}).get("inference_id"):
                        finished_chunk = True
        finally:
            response.close()
        if error is None and not (done and finished_chunk):
            error = "the stream ended without its finished chunk (with lineage) and [DONE]"
        return error, received, tokens
