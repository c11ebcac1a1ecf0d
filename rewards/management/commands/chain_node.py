"""`manage.py chain_node`: serve one in-process eth-tester (py-evm) chain over JSON-RPC/HTTP.

Neither web3 nor eth-tester ships a JSON-RPC server (eth-tester-rpc is abandoned), so this is a small
threaded `http.server` that forwards each call's method and params through web3's
EthereumTesterProvider (with its request/result formatting middleware) and returns JSON. Web, worker
and beat reach it with `CHAIN_RPC_URL=http://127.0.0.1:8545`. At start it deploys the OPEN token and
the distributor (and, with the governance app, vOPEN, timelock, governor, parameter registry and the
contributor stakes) and
records them (`ChainDeployment`, keyed by chain id + genesis hash), so a restarted
chain is detected and the lost state reported by reconciliation. Development only: state lives in
memory and dies with the process.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from django.core.management.base import BaseCommand
from eth_tester.exceptions import TransactionFailed
from web3._utils.encoding import Web3JsonEncoder

from lineage import hooks
from rewards.chain import ChainClient, InProcessChain
from rewards.chain.errors import ETH_TESTER_REVERT_PREFIX, eth_tester_revert_data
from rewards.chainio import deployment_ensure, policy_from_settings, set_chain_client


def rpc_error(error: Exception) -> dict:
    """The JSON-RPC error object for a failed call, shaped as geth shapes it.

    A revert carries its ABI-encoded data (code 3, ``data`` = ``0x...``): web3 then raises
    ``ContractLogicError``/``ContractCustomError`` with that data, and callers see the Solidity
    error's name and arguments (``NothingToClaim``), exactly as against a real node."""
    message = str(error.args[0]) if isinstance(error, TransactionFailed) and error.args else ""
    if message.startswith(ETH_TESTER_REVERT_PREFIX):
        data = eth_tester_revert_data(message)
        return {"code": 3, "message": "execution reverted", "data": "0x" + data.hex()}
    return {"code": -32000, "message": str(error)}


class JsonHandler(BaseHTTPRequestHandler):
    """An ``http.server`` handler that answers JSON bodies and does not log each request."""

    def send_json(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass


def make_handler(client: ChainClient):
    lock = threading.Lock()
    call = client.w3.provider.request_func(client.w3, client.w3.middleware_onion)

    def answer(request: dict) -> dict:
        request_id = request.get("id")
        try:
            with lock:  # py-evm is not thread-safe
                response = call(request["method"], request.get("params") or [])
        except Exception as error:  # every failure goes back to the caller as a JSON-RPC error
            return {"jsonrpc": "2.0", "id": request_id, "error": rpc_error(error)}
        return {**dict(response), "jsonrpc": "2.0", "id": request_id}

    class Handler(JsonHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
            except ValueError:
                body = None
            if isinstance(body, list):
                payload = [answer(item) for item in body]
            elif isinstance(body, dict):
                payload = answer(body)
            else:
                payload = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
            self.send_json(json.dumps(payload, cls=Web3JsonEncoder).encode())

    return Handler


class Command(BaseCommand):
    help = "Serve an in-process development chain over JSON-RPC (deploys the rewards contracts at start)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.CHAIN_NODE_HOST)
        parser.add_argument("--port", type=int, default=settings.CHAIN_NODE_PORT)

    def handle(self, *args, host, port, **options):
        server = self.build(host=host, port=port)
        self.stdout.write(self.style.SUCCESS(f"chain node on http://{host}:{server.server_address[1]}"))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    def build(self, *, host: str, port: int) -> ThreadingHTTPServer:
        client = ChainClient.in_process(InProcessChain(), policy=policy_from_settings())
        set_chain_client(client)
        try:
            deployment = deployment_ensure(client=client)
            # governance, then the contributor stakes (registered by governance/apps.py when installed)
            extra_lines = [deploy(client=client) for deploy in hooks.chain_node_deployers.callbacks()]
        finally:
            set_chain_client(None)
        self.stdout.write(f"chain {deployment.chain_id}: OPEN {deployment.token_address}, "
                          f"distributor {deployment.distributor_address}, treasury {deployment.treasury_address}")
        for line in extra_lines:
            self.stdout.write(line)
        return ThreadingHTTPServer((host, port), make_handler(client))
