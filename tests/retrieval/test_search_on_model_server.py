"""Issue #19, leftover: web processes never load models, searches included. With a model server configured, a
dense or hybrid search embeds its query on the server (`POST /v1/embeddings`), not in the web process; without
one (`make run`) it still embeds in process. A server that is down, too slow, refusing the token or answering
nonsense is a clear 503 / 504 / 502 on the search API and a message on the search page, while lexical search
keeps working.

The model server is the real one (`python -m inference.engine.server`, a subprocess with a token). The web
process is a fresh Python process on the test database (`transaction=True`; `process_support.test_database_url`)
that answers the search API through Django's request handling; it must end with neither torch nor
sentence-transformers imported, and its results must be the ones this process gets embedding in process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.urls import reverse
from documents_support import HTML_PAGE, PDF_PAGES, text_pdf, training_docx
from model_server_support import ModelServerProcess, free_port
from process_support import test_database_url

from retrieval import query_embedding

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "search-embedding-token"
HEAVY = ("torch", "transformers", "sentence_transformers", "peft", "safetensors.torch")
QUERY = "how much power does the tidal turbine deliver"

WEB_PROBE = """
import json, sys
import django
django.setup()
from django.conf import settings
from django.test import Client

url, query, heavy_names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
answers = {"embed_in_process": settings.RETRIEVAL_EMBED_IN_PROCESS}
client = Client()
for mode in ("dense", "hybrid", "lexical"):
    response = client.get(url, {"q": query, "mode": mode, "k": 5})
    answers[mode] = {"status": response.status_code, "body": response.json()}
answers["heavy"] = [name for name in heavy_names if name in sys.modules]
print("ANSWERS " + json.dumps(answers))
"""

SETTING_PROBE = """
import django
django.setup()
from django.conf import settings
print("IN_PROCESS", settings.RETRIEVAL_EMBED_IN_PROCESS)
"""


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    server = ModelServerProcess(model_root=tmp_path_factory.mktemp("model-root"), token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def handbook(documents_datanet, alice, dora, contribute_documents, publish_all):
    """A public Documents Datanet of Dora's PDF, web page and Word document, published with its index built."""
    datanet = documents_datanet(alice)
    contribute_documents(datanet, dora, {"coastal-energy.pdf": text_pdf(PDF_PAGES), "guide.html": HTML_PAGE,
                                        "training.docx": training_docx()})
    publish_all(datanet, alice)
    return datanet


@pytest.fixture
def remote_embedding(settings):
    """`remote_embedding(url, token=...)`: this process embeds queries on the server at `url`."""

    def point(url: str, *, token: str = TOKEN, timeout: float = 30.0) -> None:
        settings.RETRIEVAL_EMBED_IN_PROCESS = False
        settings.INFERENCE_SERVER_URL = url
        settings.INFERENCE_SERVER_TOKEN = token
        settings.RETRIEVAL_EMBED_TIMEOUT_S = timeout

    yield point
    query_embedding._local.__dict__.clear()


def search_url(datanet) -> str:
    return f"/api/v1/datanets/{datanet.slug}/versions/1/search/"


def web_env(settings, tmp_path, **extra) -> dict:
    env = {"DJANGO_SETTINGS_MODULE": "lineage.settings", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "DATABASE_URL": test_database_url(), "MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "RETRIEVAL_CACHE_DIR": str(tmp_path / "web-retrieval-cache"), "LINEAGE_VAR_DIR": str(tmp_path / "web-var")}
    env.update(extra)
    return env


@pytest.mark.django_db(transaction=True)
def test_a_web_process_with_a_model_server_searches_without_torch_and_finds_the_same_passages(
        handbook, model_server, settings, tmp_path, api_client):
    settings.RETRIEVAL_EMBED_IN_PROCESS = True  # this process: the in-process answer to compare with
    expected = {mode: api_client.get(search_url(handbook), {"q": QUERY, "mode": mode, "k": 5}).json()
                for mode in ("dense", "hybrid")}
    assert "Harrowgate" in expected["dense"]["results"][0]["text"]

    env = web_env(settings, tmp_path, INFERENCE_SERVER_URL=model_server.url, INFERENCE_SERVER_TOKEN=TOKEN)
    result = subprocess.run([sys.executable, "-c", WEB_PROBE, search_url(handbook), QUERY, ",".join(HEAVY)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("ANSWERS "))[8:])
    assert answers["embed_in_process"] is False  # a model server is configured: the default is to use it
    assert answers["heavy"] == [], f"a web process loaded {answers['heavy']} for a search"
    for mode in ("dense", "hybrid"):
        assert answers[mode]["status"] == 200, answers[mode]
        got, want = answers[mode]["body"], expected[mode]
        assert [r["record_id"] for r in got["results"]] == [r["record_id"] for r in want["results"]], mode
        for mine, theirs in zip(got["results"], want["results"]):
            for key in ("dense_score", "lexical_score", "score"):
                if theirs[key] is None:
                    assert mine[key] is None
                else:
                    assert mine[key] == pytest.approx(theirs[key], abs=1e-6), (mode, key)
            rest = {k: v for k, v in mine.items() if not k.endswith("score")}
            assert rest == {k: v for k, v in theirs.items() if not k.endswith("score")}
        assert {k: v for k, v in got.items() if k != "results"} == {k: v for k, v in want.items() if k != "results"}
    assert answers["lexical"]["status"] == 200
    assert answers["lexical"]["body"]["results"][0]["contributor"] == "Dora"


def test_the_default_embeds_in_process_only_when_no_model_server_is_configured(settings, tmp_path):
    def in_process(**extra) -> str:
        result = subprocess.run([sys.executable, "-c", SETTING_PROBE], cwd=ROOT, capture_output=True, text=True,
                                timeout=120, env=web_env(settings, tmp_path, **extra))
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.split("IN_PROCESS ", 1)[1].strip()

    assert in_process() == "True"  # make run: no server configured
    assert in_process(INFERENCE_SERVER_URL="http://model-server:8100") == "False"
    assert in_process(INFERENCE_SERVER_URLS="http://gpu-a:8100,http://gpu-b:8100") == "False"
    assert in_process(INFERENCE_SERVER_URL="http://model-server:8100", RETRIEVAL_EMBED_IN_PROCESS="1") == "True"


@pytest.mark.django_db
def test_a_model_server_that_is_down_is_a_503_and_lexical_search_still_answers(handbook, remote_embedding,
                                                                                api_client, client):
    remote_embedding(f"http://127.0.0.1:{free_port()}")  # nobody listens there
    for mode in ("dense", "hybrid"):
        answer = api_client.get(search_url(handbook), {"q": QUERY, "mode": mode})
        assert answer.status_code == 503, answer.content
        body = answer.json()
        assert body["code"] == "model_server_unavailable"
        assert "not reachable" in body["detail"] and "mode=lexical" in body["detail"]
        assert "127.0.0.1" not in body["detail"]  # the server's address is for operators' logs
    lexical = api_client.get(search_url(handbook), {"q": "Harrowgate turbine", "mode": "lexical"})
    assert lexical.status_code == 200 and "Harrowgate" in lexical.json()["results"][0]["text"]
    page = client.get(reverse("retrieval:version_search", args=[handbook.slug, 1]), {"q": QUERY}).content.decode()
    assert "not reachable right now" in page
    page = client.get(reverse("retrieval:version_search", args=[handbook.slug, 1]),
                      {"q": "Harrowgate turbine", "mode": "lexical"}).content.decode()
    assert "coastal-energy.pdf" in page


@pytest.mark.django_db
def test_a_refused_token_is_a_503_for_the_operator(handbook, model_server, remote_embedding, api_client):
    remote_embedding(model_server.url, token="not-the-servers-token")
    answer = api_client.get(search_url(handbook), {"q": QUERY, "mode": "dense"})
    assert answer.status_code == 503
    assert answer.json()["code"] == "model_server_auth" and "INFERENCE_SERVER_TOKEN" in answer.json()["detail"]
    remote_embedding(model_server.url)  # the right token: the real server embeds the query
    answer = api_client.get(search_url(handbook), {"q": QUERY, "mode": "dense"})
    assert answer.status_code == 200 and "Harrowgate" in answer.json()["results"][0]["text"]


@pytest.mark.django_db
def test_a_model_server_that_says_nothing_in_time_is_a_504(handbook, remote_embedding, api_client):
    with socket.socket() as silent:  # takes connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        remote_embedding(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
        answer = api_client.get(search_url(handbook), {"q": QUERY, "mode": "hybrid"})
    assert answer.status_code == 504
    assert answer.json()["code"] == "model_server_timeout" and "in time" in answer.json()["detail"]


class _NotAnEmbedding(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"object": "list", "data": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.django_db
def test_an_answer_that_is_not_an_embedding_is_a_502(handbook, remote_embedding, api_client):
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), _NotAnEmbedding)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    try:
        remote_embedding(f"http://127.0.0.1:{stand_in.server_address[1]}")
        answer = api_client.get(search_url(handbook), {"q": QUERY, "mode": "dense"})
    finally:
        stand_in.shutdown()
        stand_in.server_close()
    assert answer.status_code == 502 and answer.json()["code"] == "model_server_error"
    assert "not one" in answer.json()["detail"]

