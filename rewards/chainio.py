"""Django's door to the chain engine: one `ChainClient` per process from settings, and the recorded
`ChainDeployment` of the token and distributor on that chain.

`CHAIN_RPC_URL` empty means an in-process eth-tester chain living in this process only (fine for a
shell or a test); `python manage.py chain_node` serves one chain over JSON-RPC so web, worker and beat
share it through `CHAIN_RPC_URL=http://127.0.0.1:8545`. Tests install their own client with
`set_chain_client` (see tests/rewards/conftest.py).
"""

import logging
import threading

from django.conf import settings

from rewards.chain import ChainClient, DistributorContract, TokenContract, TransactionPolicy, deploy_rewards

from .chain_records import (
    deployment_get_or_record,
    deployment_recorded,
    genesis_hash,  # noqa: F401 - also rewards.chainio.genesis_hash, as before
)
from .models import ChainDeployment, Epoch, EpochState, ReconciliationIssue

logger = logging.getLogger("rewards.chain")
OPEN = 10**18
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

_lock = threading.Lock()
_override: ChainClient | None = None
_clients: dict[str, ChainClient] = {}


class ChainUnavailable(Exception):
    pass


def policy_from_settings() -> TransactionPolicy:
    return TransactionPolicy(confirmations=max(1, settings.CHAIN_CONFIRMATIONS),
                             receipt_timeout_s=settings.CHAIN_RECEIPT_TIMEOUT_S)


def set_chain_client(client: ChainClient | None) -> None:
    """Use this client in this process (tests, the chain_node command); None goes back to settings."""
    global _override
    _override = client


def get_chain_client() -> ChainClient:
    if _override is not None:
        return _override
    url = settings.CHAIN_RPC_URL
    with _lock:
        if url not in _clients:
            if url:
                _clients[url] = ChainClient.from_rpc(url, settings.CHAIN_PRIVATE_KEY, policy=policy_from_settings())
            else:
                _clients[url] = ChainClient.in_process(policy=policy_from_settings())
        return _clients[url]


def contracts(deployment: ChainDeployment, client: ChainClient) -> tuple[TokenContract, DistributorContract]:
    return (TokenContract(client, deployment.token_address), DistributorContract(client, deployment.distributor_address))


def _has_code(client: ChainClient, address: str) -> bool:
    return len(client.w3.eth.get_code(client.w3.to_checksum_address(address))) > 0


def deployment_record(*, client: ChainClient, token_address: str, distributor_address: str, deployed_at_block: int,
                      treasury_address: str | None = None) -> ChainDeployment:
    """Record (or return the recorded) deployment for this chain; reports a restarted chain's lost state."""
    treasury = treasury_address or client.address
    deployment, created = deployment_get_or_record(
        ChainDeployment, client=client,
        defaults={"token_address": token_address, "distributor_address": distributor_address,
                  "deployed_at_block": deployed_at_block, "treasury_address": treasury,
                  "deposit_address": settings.REWARDS_DEPOSIT_ADDRESS or treasury},
    )
    if created:
        _report_lost_deployments(deployment)
    return deployment


def _report_lost_deployments(current: ChainDeployment) -> None:
    for old in ChainDeployment.objects.exclude(pk=current.pk):
        epochs = Epoch.objects.filter(deployment=old)
        if not epochs.exists() and not old.deposits.exists():
            continue
        open_epochs = list(epochs.exclude(state=EpochState.CLOSED).values_list("number", flat=True))
        detail = (f"The chain was replaced (chain {current.chain_id}, new genesis {current.genesis_hash[:18]}…): "
                  f"deployment {old.pk} with {epochs.count()} epoch(s) and {old.deposits.count()} deposit(s) is gone "
                  f"from chain. Roots, funding and claims recorded for it are not on the new chain; "
                  f"unfinished epochs {open_epochs or 'none'} cannot complete. Nothing was re-posted automatically.")
        report_issue(kind="chain_reset", fingerprint=f"chain_reset:{old.pk}", detail=detail, deployment=old,
                     data={"old_deployment": old.pk, "new_deployment": current.pk, "open_epochs": open_epochs})


def deployment_ensure(*, client: ChainClient | None = None) -> ChainDeployment:
    """The deployment on the current chain; deploys token + distributor when none is recorded and
    `REWARDS_CHAIN_AUTO_DEPLOY` is on (the embedded/dev default), or registers configured addresses."""
    client = client or get_chain_client()
    deployment = deployment_recorded(ChainDeployment, client=client)
    if deployment is not None:
        return deployment
    if settings.REWARDS_DISTRIBUTOR_ADDRESS and settings.REWARDS_TOKEN_ADDRESS:
        return deployment_record(client=client, token_address=settings.REWARDS_TOKEN_ADDRESS,
                                 distributor_address=settings.REWARDS_DISTRIBUTOR_ADDRESS,
                                 deployed_at_block=settings.REWARDS_DEPLOYED_AT_BLOCK)
    if not settings.REWARDS_CHAIN_AUTO_DEPLOY:
        raise ChainUnavailable("No rewards deployment is recorded for this chain and auto-deploy is off: set "
                               "REWARDS_TOKEN_ADDRESS and REWARDS_DISTRIBUTOR_ADDRESS.")
    deployed = deploy_rewards(client, supply=settings.REWARDS_DEV_TOKEN_SUPPLY)
    logger.info("deployed OPEN %s and distributor %s", deployed.token.address, deployed.distributor.address)
    return deployment_record(client=client, token_address=deployed.token.address,
                             distributor_address=deployed.distributor.address,
                             deployed_at_block=deployed.deployed_at_block)


def report_issue(*, kind: str, fingerprint: str, detail: str, data=None, deployment=None, epoch=None):
    """Record a disagreement once while it is open, and log it. Never changes the ledger."""
    existing = ReconciliationIssue.objects.filter(fingerprint=fingerprint, resolved_at__isnull=True).first()
    if existing:
        return existing
    logger.warning("reconciliation issue %s: %s", kind, detail)
    return ReconciliationIssue.objects.create(kind=kind, fingerprint=fingerprint[:200], detail=detail,
                                              data=data or {}, deployment=deployment, epoch=epoch)
