"""Story fixtures: a real model server inside the test process (`lineage.demo.serving`); the chain comes
from the shared `chain` fixture in tests/conftest.py."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads():
    # The live server, the model server and training share this process; two threads each is plenty.
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def model_server():
    """An engine HTTP server in this process; `.sync()` loads what is deployed, as serve_models does."""
    from lineage.demo.serving import model_server_in_process

    with model_server_in_process() as server:
        yield server
