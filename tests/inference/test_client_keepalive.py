"""The web tier's model-server client drops idle connections before the model server closes them.

With equal idle timeouts (5 s each) the client sometimes reused a connection the server was closing at that
moment and the request failed with "Server disconnected without sending a response" (twice in the 600 s load
run of bench/load.py, each answered 502 to the caller)."""

import inspect

from django.conf import settings

from inference.client import KEEPALIVE_EXPIRY_S, ServerConnection
from inference.engine.server import EngineServer


def test_idle_connections_expire_on_the_client_first():
    server_default = inspect.signature(EngineServer.__init__).parameters["keep_alive_timeout"].default
    assert KEEPALIVE_EXPIRY_S < min(server_default, settings.INFERENCE_SERVER_KEEPALIVE_S)
    connection = ServerConnection("http://127.0.0.1:9")
    pool = connection._client._transport._pool
    # The client's pool keeps its defaults otherwise (100 connections, 20 kept alive).
    assert pool._keepalive_expiry == KEEPALIVE_EXPIRY_S
    assert pool._max_connections == 100 and pool._max_keepalive_connections == 20
    connection.close()
