"""The model server's `POST /v1/embeddings`: the bundled MiniLM that retrieval indexes are built with, for the web
tier's search queries (issue #19: web processes never load models).

A real server (`inference.engine.server.serve`: uvicorn over the Starlette app and an `EngineHost`, started with
no base model) runs in a thread of this process on a free port, with a token. Asserted: its vectors are the very
vectors `retrieval.engine.PassageEncoder` gives in process, as floats and as base64; OpenAI's own client reads
them; the model is loaded once per process; every bad request is answered with a message naming the field."""

from __future__ import annotations

import base64
import threading

import httpx
import numpy as np
import pytest

from inference.client import ModelServerClient, ModelServerError
from inference.engine.embeddings import MAX_INPUTS, MODEL_NAME
from inference.engine.server import serve
from retrieval.engine import PassageEncoder

TOKEN = "embedding-test-token"
TEXTS = ["The Harrowgate tidal turbine delivers 47 megawatts at spring tide.",
         "Take the coastal bus number 12 from the railway station.", "lighthouse"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = serve(None, port=0, token=TOKEN, model_root=tmp_path_factory.mktemp("model-root"), device="cpu")
    thread = threading.Thread(target=started.serve_forever, daemon=True)
    thread.start()
    yield started
    started.shutdown(timeout=10)
    started.server_close()
    started.close_engines()


@pytest.fixture(scope="module")
def local_vectors():
    encoder = PassageEncoder()
    return encoder.encode(TEXTS), encoder.identity


def post(server, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{server.url}/v1/embeddings", json=body, headers=headers, timeout=120)


def test_the_servers_vectors_are_the_in_process_encoders_as_floats_and_base64(server, local_vectors):
    expected, identity = local_vectors
    answer = post(server, {"input": TEXTS, "model": MODEL_NAME})
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["object"] == "list" and payload["model"] == MODEL_NAME
    assert [row["index"] for row in payload["data"]] == [0, 1, 2]
    assert {row["object"] for row in payload["data"]} == {"embedding"}
    vectors = np.asarray([row["embedding"] for row in payload["data"]], dtype=np.float32)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert payload["model_identity"] == {"model": MODEL_NAME, "fingerprint": identity["fingerprint"],
                                         "dimension": 384, "max_tokens": 256}
    # [CLS] and [SEP] count: every text is at least 3 tokens, and "lighthouse" is one word piece
    assert payload["usage"]["prompt_tokens"] == payload["usage"]["total_tokens"] > 3 * 3

    packed = post(server, {"input": TEXTS, "model": "all-minilm-l6-v2", "encoding_format": "base64"}).json()
    decoded = np.stack([np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4") for row in packed["data"]])
    np.testing.assert_array_equal(decoded, vectors)  # the same batch, the same vectors, to the bit

    # One text alone (what a search sends) is the in-process encode of that text alone, to the bit.
    alone = post(server, {"input": TEXTS[2], "model": MODEL_NAME}).json()
    np.testing.assert_array_equal(np.asarray(alone["data"][0]["embedding"], dtype=np.float32),
                                  PassageEncoder().encode([TEXTS[2]])[0])
    assert alone["usage"]["prompt_tokens"] == 3


def test_openai_client_and_the_web_tiers_client_read_the_same_vectors(server, local_vectors):
    import openai

    expected, _ = local_vectors
    client = openai.OpenAI(api_key=TOKEN, base_url=f"{server.url}/v1", max_retries=0, timeout=120)
    answer = client.embeddings.create(model=MODEL_NAME, input=TEXTS)  # asks for base64, decodes it
    np.testing.assert_allclose(np.asarray([row.embedding for row in answer.data]), expected, atol=1e-6)
    assert answer.usage.prompt_tokens > 0

    web = ModelServerClient(server.url, token=TOKEN, timeout=60)
    try:
        payload = web.embed(TEXTS[:1], model=MODEL_NAME)
    finally:
        web.close()
    np.testing.assert_allclose(payload["data"][0]["embedding"], expected[0], atol=1e-6)


def test_the_model_is_loaded_once_per_process(server):
    for _ in range(2):
        assert post(server, {"input": "once", "model": MODEL_NAME}).status_code == 200
    embedders = server.host.embedders
    assert embedders.loaded == [MODEL_NAME]
    first = embedders.encoder(MODEL_NAME)
    assert post(server, {"input": "twice", "model": "ALL-MiniLM-L6-v2"}).status_code == 200
    assert embedders.encoder(MODEL_NAME) is first and embedders.loaded == [MODEL_NAME]


BAD_REQUESTS = [
    ({"model": MODEL_NAME}, 400, "input", "non-empty list of strings"),
    ({"input": [], "model": MODEL_NAME}, 400, "input", "non-empty list of strings"),
    ({"input": [101, 2023], "model": MODEL_NAME}, 400, "input", "token ids are not accepted"),
    ({"input": ["ok", None], "model": MODEL_NAME}, 400, "input", "list of strings"),
    ({"input": ["x"] * (MAX_INPUTS + 1), "model": MODEL_NAME}, 400, "input", f"at most {MAX_INPUTS}"),
    ({"input": "x"}, 400, "model", "must name the embedding model"),
    ({"input": "x", "model": "text-embedding-3-small"}, 404, "model", "embeds with"),
    ({"input": "x", "model": MODEL_NAME, "encoding_format": "int8"}, 400, "encoding_format", "must be one of"),
    ({"input": "x", "model": MODEL_NAME, "dimensions": 128}, 400, "dimensions", "cannot shorten"),
]


@pytest.mark.parametrize(("body", "status", "param", "words"), BAD_REQUESTS)
def test_a_bad_request_names_the_field_that_is_wrong(server, body, status, param, words):
    answer = post(server, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_without_the_token_or_with_a_broken_body_nothing_is_embedded(server):
    refused = post(server, {"input": "x", "model": MODEL_NAME}, token=None)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    assert post(server, {"input": "x", "model": MODEL_NAME}, token="wrong").status_code == 401
    broken = httpx.post(f"{server.url}/v1/embeddings", content=b"{not json", timeout=30,
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    web = ModelServerClient(server.url, token="wrong", timeout=30)
    try:
        with pytest.raises(ModelServerError) as refused_client:
            web.embed(["x"], model=MODEL_NAME)
    finally:
        web.close()
    assert refused_client.value.code == "model_server_auth" and refused_client.value.status == 503
