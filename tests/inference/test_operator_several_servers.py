"""Issue #17: with two model servers in `INFERENCE_SERVER_URLS`, the operator page and `/metrics` show each
server's bases and adapters; a server that is down (or hangs) shows as down while the other is still listed,
and with every server down the page says so; none of it breaks the page.

The servers are the real model server (`inference.engine.server.serve`, uvicorn) on two ports in this
process, each with its own model root, a tiny Llama base and its own adapters."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from inference import selectors
from inference.client import ServerConnection
from inference.engine.model_store import publish_adapter, publish_base
from inference.engine.server import serve
from inference.engine.testing import build_tiny_llama, save_random_adapter

pytestmark = pytest.mark.django_db
TOKEN = "operator-token"
BASE = "llama:causal_lm"


@pytest.fixture
def two_servers(tmp_path, settings):
    """Server A holds adapters alpha and shared, server B beta and shared; A answered one request for alpha."""
    torch.set_num_threads(1)
    llama_dir = build_tiny_llama(tmp_path / "llama")
    model = AutoModelForCausalLM.from_pretrained(llama_dir)
    shas = {name: save_random_adapter(model, tmp_path / name, rank=4, target_modules=["q_proj", "v_proj"], seed=i)
            for i, name in enumerate(("alpha", "beta", "shared"))}
    servers = []
    for label, adapters in (("a", ("alpha", "shared")), ("b", ("beta", "shared"))):
        root = tmp_path / f"root-{label}"
        publish_base(root, "llama", llama_dir)
        server = serve(None, "127.0.0.1", 0, model_root=root, token=TOKEN,
                       engine_defaults={"num_slots": 2, "max_rank": 8})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        admin = ServerConnection(server.url, token=TOKEN, timeout=300)
        admin.load_base(name=BASE, model="llama", task="causal_lm")
        for name in adapters:
            publish_adapter(root, f"{name}-v1", tmp_path / name)
            admin.load_adapter(name=name, version=f"{name}-v1", sha256=shas[name], base=BASE)
        if label == "a":
            admin.generate("hello", adapter="alpha", max_tokens=2, temperature=0)
        admin.close()
        servers.append(server)
    settings.INFERENCE_SERVER_TOKEN = TOKEN
    settings.INFERENCE_SERVER_URL = ",".join(server.url for server in servers)
    yield servers
    for server in servers:
        stop(server)


def stop(server) -> None:
    if server.socket.fileno() != -1:  # not stopped yet
        server.shutdown(timeout=30)
        server.server_close()
        server.close_engines()


def _sections(html: str) -> dict[str, str]:
    """The operator page's section per server, by URL (each runs to the next server's, or the page's end)."""
    chunks = html.split('<section class="server" ')[1:]
    return {re.search(r'data-url="([^"]+)"', chunk).group(1): chunk for chunk in chunks}


def _adapter_names(section: str) -> set[str]:
    return set(re.findall(r'data-testid="requests-([^"]+)"', section))


def _metric(text: str, name: str) -> dict[str, float]:
    return {labels: float(value) for labels, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, flags=re.M)}


def test_each_server_is_listed_with_its_bases_and_adapters_and_a_down_one_shows_down(two_servers, client, staff):
    first, second = two_servers
    client.force_login(staff)

    page = client.get("/playground/operator/")
    assert page.status_code == 200
    sections = _sections(page.content.decode())
    assert list(sections) == [first.url, second.url]
    assert all('data-up="true"' in body for body in sections.values())
    assert _adapter_names(sections[first.url]) == {"alpha", "shared"}
    assert _adapter_names(sections[second.url]) == {"beta", "shared"}
    assert re.search(r'data-testid="requests-alpha">1<', sections[first.url])
    assert BASE in sections[first.url] and BASE in sections[second.url]

    overview = selectors.operator_overview()
    assert overview["up"] and [s["url"] for s in overview["servers"]] == [first.url, second.url]
    assert {b["server"] for b in overview["bases"]} == {first.url, second.url}

    metrics = client.get("/metrics").content.decode()
    assert _metric(metrics, "lineage_model_server_up") == {"": 1.0}
    assert _metric(metrics, "lineage_model_server_instance_up") == {
        f'{{server="{first.url}"}}': 1.0, f'{{server="{second.url}"}}': 1.0}
    where = first.url.removeprefix("http://")
    requests = _metric(metrics, "lineage_model_server_adapter_requests")
    assert requests[f'{{adapter="alpha",base="{BASE} @ {where}"}}'] == 1.0
    assert f'{{adapter="beta",base="{BASE} @ {second.url.removeprefix("http://")}"}}' in requests

    stop(second)  # down: its port refuses connections
    page = client.get("/playground/operator/")
    assert page.status_code == 200
    html = page.content.decode()
    sections = _sections(html)
    assert 'data-up="true"' in sections[first.url] and _adapter_names(sections[first.url]) == {"alpha", "shared"}
    assert 'data-up="false"' in sections[second.url] and _adapter_names(sections[second.url]) == set()
    assert 'data-testid="server-down"' in sections[second.url] and "is not reachable" in sections[second.url]
    assert "No model server answers" not in html
    metrics = client.get("/metrics").content.decode()
    assert _metric(metrics, "lineage_model_server_up") == {"": 0.0}  # not every server answered
    assert _metric(metrics, "lineage_model_server_instance_up") == {
        f'{{server="{first.url}"}}': 1.0, f'{{server="{second.url}"}}': 0.0}
    assert f'{{adapter="alpha",base="{BASE} @ {where}"}}' in _metric(metrics, "lineage_model_server_adapter_requests")


def test_a_hung_server_costs_one_timeout_and_every_server_down_is_said(two_servers, client, staff, settings):
    first, second = two_servers
    client.force_login(staff)
    hung = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}"
    try:
        settings.INFERENCE_SERVER_URL = f"{first.url},{hung_url},{second.url}"
        started = time.monotonic()
        page = client.get("/playground/operator/")
        assert time.monotonic() - started < 6  # asked at once: one 3 s timeout, not one per server
        sections = _sections(page.content.decode())
        assert list(sections) == [first.url, hung_url, second.url]
        assert 'data-up="false"' in sections[hung_url] and "did not answer in time" in sections[hung_url]
        assert _adapter_names(sections[second.url]) == {"beta", "shared"}
    finally:
        hung.close()

    for server in two_servers:
        stop(server)
    page = client.get("/playground/operator/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "No model server answers" in html and first.url in html and second.url in html
    assert 'data-up="true"' not in html
