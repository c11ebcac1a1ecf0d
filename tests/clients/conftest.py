"""Fixtures for the Python SDK and CLI (clients/python): the client package is imported from its source tree,
so a fresh clone runs these tests after `make install` alone; it talks HTTP to a live Django server (tasks
eager, so validation and training run inside the requests), which proxies chat to a real model-server
process."""

import sys
from pathlib import Path

import pytest
import torch

CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "python"
if str(CLIENT_SOURCE) not in sys.path:
    sys.path.insert(0, str(CLIENT_SOURCE))

from model_server_support import ModelServerProcess  # noqa: E402

ALL_SCOPES = ("read", "contribute", "train", "infer")
GOOD = "\n".join(["text,label", *(f"{text} please help {i},billing" for i, text in enumerate(
    ["I was charged twice", "refund my payment", "my invoice is wrong", "the card payment failed",
     "why was I billed again", "cancel the charge on my card"] * 2)),
    *(f"{text} please help {i},shipping" for i, text in enumerate(
        ["where is my parcel", "the courier lost my package", "delivery is late", "tracking number does not work",
         "parcel arrived damaged", "change my delivery address"] * 2))])


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_config_file(tmp_path, monkeypatch):
    """No test reads or writes the real ~/.config/lineage, nor takes a URL or key from the environment."""
    monkeypatch.setenv("LINEAGE_CONFIG", str(tmp_path / "lineage-config.toml"))
    monkeypatch.delenv("LINEAGE_URL", raising=False)
    monkeypatch.delenv("LINEAGE_API_KEY", raising=False)


@pytest.fixture
def base_model(db):
    from models_registry import services

    return services.base_model_ensure_default()


@pytest.fixture
def intents_csv(tmp_path):
    """24 good rows of two intents, and on line 26 a row with a label the Datanet does not have."""
    path = tmp_path / "intents.csv"
    path.write_text(GOOD + "\nplease send me a sticker,refunds\n", encoding="utf-8")
    return path


@pytest.fixture
def lineage_for(live_server, api_key_for):
    """A `Lineage` client on the live server with a fresh key of `user`'s with the given scopes."""
    from lineage_client import Lineage

    clients = []

    def make(user, *scopes, **options):
        _, secret = api_key_for(user, *(scopes or ALL_SCOPES))
        client = Lineage(live_server.url, secret, timeout=600, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    server = ModelServerProcess(model_root=tmp_path_factory.mktemp("client-model-root")).start()
    yield server
    server.stop()


@pytest.fixture
def sync(settings, model_server):
    """Load what is deployed into the model server, as `serve_models` does."""
    from inference import answering
    from inference.client import ModelServerClient
    from inference.deployments import DeploymentSync

    settings.INFERENCE_SERVER_URL = model_server.url
    settings.INFERENCE_SERVER_URLS = [model_server.url]
    answering._local.__dict__.clear()
    client = ModelServerClient(model_server.url, timeout=300)
    yield DeploymentSync(client).sync
    client.close()


@pytest.fixture
def accept_all(alice):
    """The curator's part, done through the existing service: accept every pending row of a Datanet."""
    from datanets import services as datanet_services
    from datanets.models import Datanet

    def accept(slug):
        datanet = Datanet.objects.get(slug=slug)
        pending = datanet.records.filter(status="pending").values_list("pk", flat=True)
        return datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=list(pending),
                                               decision="accept")

    return accept
