"""Locust users for Lineage's load test (run by bench/load.py, which seeds the data and starts the servers).

* Contributors browse the public pages and the API, upload rows and poll their contribution.
* Curators work the review queue: read pending rows, accept a page of them.
* API users call the OpenAI-compatible endpoint (a paid classifier: every answer carries a receipt and a fee).

Every user authenticates with its own API key (`Authorization: Bearer`), read from the seed file named by
LINEAGE_LOAD_SEED. Any answer other than the expected status, or a body that is not the expected JSON, is
a failure.
"""

import itertools
import json
import os
import random
import uuid

from locust import HttpUser, between, task

SEED = json.loads(open(os.environ["LINEAGE_LOAD_SEED"]).read())
_turns = {kind: itertools.count() for kind in ("contributors", "curators", "api_users")}
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
