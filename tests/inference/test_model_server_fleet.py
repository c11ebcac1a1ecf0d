"""Several model servers under the web tier: the deployment poller loads a deployed model on every server
holding its base (publishing its files into each server's model root), the API keeps answering when one
server is killed mid-run, and a server that comes back empty is filled on the next poll. `serve_models`
runs the same sync for its own server, and refuses a non-loopback bind without a token."""

import json

import pytest
from django.core.management import CommandError, call_command
from model_server_support import ModelServerProcess, free_port

from inference import answering
from inference.client import ModelServerClient
from inference.deployments import FleetSync

pytestmark = pytest.mark.django_db
TOKEN = "fleet-test-token"
BASE = "tiny-llama:causal_lm"


@pytest.fixture
def sums_model(tmp_path, alice, publish, fine_tune):
    """A tiny Llama fine-tuned on "What is a plus b?" rows, deployed free."""
    from models_registry import services as registry_services
    from models_registry.models import BaseModel
    from models_registry.training import build_tiny_causal_model

    rows = [{"prompt": f"What is {a} plus {b}?", "response": f"{a + b}"} for a in range(5) for b in range(5)]
    path = build_tiny_causal_model(tmp_path / "tiny-llama", [f"{r['prompt']} {r['response']}" for r in rows],
                                   arch="llama", seed=0)
    base = BaseModel.objects.create(name="Tiny Llama", slug="tiny-llama", source_kind="path", source_ref=str(path),
                                    architecture="llama", task_types=["instruction", "text"])
    version = publish(alice, rows, task_type="instruction", labels=(), name="Sums")
    model = fine_tune(owner=alice, name="sums", base_model=base, datanet_versions=[version], epochs=1, batch_size=8,
                      max_seq_length=32, eval_fraction=0.2)
    return registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)


@pytest.fixture
def fleet(tmp_path, settings):
    """Two model-server processes, each with its own model root, and the web tier pointed at both."""
    settings.INFERENCE_SERVER_TOKEN = TOKEN
    servers = [ModelServerProcess(model_root=tmp_path / f"root-{i}", token=TOKEN).start() for i in range(2)]
    settings.INFERENCE_SERVER_URL = ",".join(server.url for server in servers)
    answering._local.__dict__.clear()  # no client left from another test's servers
    yield servers
    for server in servers:
        server.stop()
    answering._local.__dict__.clear()


def _events(chunks) -> list:
    events = []
    for chunk in chunks:
        for block in chunk.decode().split("\n\n"):
            if block.startswith("data: "):
                data = block.removeprefix("data: ")
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_every_server_is_loaded_and_the_api_survives_one_killed_mid_run(fleet, sums_model, charlie, key_client):
    first, second = fleet
    clients = [ModelServerClient(server.url, timeout=300) for server in fleet]  # the token comes from settings
    sync = FleetSync(clients)
    report = sync.sync()
    assert report.down == {} and report.placement == {BASE: sorted([first.url, second.url])}
    assert {url: each.loaded for url, each in report.servers.items()} == {first.url: [sums_model.slug],
                                                                          second.url: [sums_model.slug]}
    for client in clients:  # loaded by version hash from the server's own root, never by a path
        assert client.status()["adapters"][sums_model.slug]["version"] == sums_model.version_hash

    api = key_client(charlie, "infer")
    body = {"model": sums_model.slug, "prompt": "What is 1 plus 2?", "max_tokens": 4, "temperature": 0}
    for i in range(10):
        if i == 3:
            first.kill()  # SIGKILL between requests: the router still believes in it until one fails there
        streamed = bool(i % 2)
        response = api.post("/v1/completions", {**body, "stream": streamed}, format="json")
        assert response.status_code == 200, (i, response.content)
        if streamed:
            events = _events(response.streaming_content)
            assert events[-1] == "[DONE]" and "error" not in events[-2], (i, events[-2])
        else:
            assert response.json()["choices"][0]["finish_reason"] in ("stop", "length")
    routed = {view.url: view.healthy for view in answering.server_client().pool.views}
    assert routed == {first.url: False, second.url: True}  # the web tier stopped sending to the dead one

    report = sync.sync()  # the poller sees the loss...
    assert first.url in report.down and report.placement == {BASE: [second.url]}
    first.start()  # ...and the same address coming back as a new, empty process: filled again
    report = sync.sync()
    assert report.servers[first.url].loaded == [sums_model.slug] and report.servers[second.url].loaded == []
    assert report.placement == {BASE: sorted([first.url, second.url])}
    for client in clients:
        client.close()


@pytest.mark.parametrize(("replicas", "holding", "expected"), [
    (0, {"a": {"x"}, "b": set()}, {"x": ["a", "b"], "y": ["a", "b"]}),  # every server holds every base
    (1, {"a": {"x"}, "b": set()}, {"x": ["a"], "y": ["b"]}),  # one copy each, spread over the servers
    (1, {"b": set()}, {"x": ["b"], "y": ["b"]}),  # "a" left: its base moves to the one still there
    (2, {"a": {"x"}, "b": {"x"}, "c": set()}, {"x": ["a", "b"], "y": ["c", "a"]}),  # holders stay; fewest first
])
def test_bases_are_placed_on_the_requested_number_of_servers(replicas, holding, expected):
    assert FleetSync([], replicas=replicas).place({"x", "y"}, holding) == expected


def test_serve_models_once_runs_a_server_and_loads_what_is_deployed(sums_model, settings, tmp_path, capsys):
    settings.INFERENCE_SERVER_TOKEN = TOKEN
    settings.INFERENCE_MODEL_ROOT = tmp_path / "serving"
    call_command("serve_models", "--once", "--port", str(free_port()), "--device", "cpu")
    out = capsys.readouterr().out
    assert "model server on http://127.0.0.1:" in out and "token required" in out
    assert f"loaded {sums_model.slug}" in out and "1 adapter(s) on 1 base(s)" in out
    assert (tmp_path / "serving" / "adapters" / sums_model.version_hash / "adapter_model.safetensors").is_file()


def test_serve_models_refuses_a_network_bind_without_a_token(settings, tmp_path):
    settings.INFERENCE_SERVER_TOKEN = ""
    settings.INFERENCE_MODEL_ROOT = tmp_path / "serving"
    with pytest.raises(CommandError, match="without a token"):
        call_command("serve_models", "--once", "--host", "0.0.0.0", "--port", str(free_port()))
    with pytest.raises(CommandError, match="--poll must be a positive"):
        call_command("serve_models", "--once", "--poll", "0")
