"""Reading the chain's event logs into the ledger: one cursor per (deployment, event stream), so each
indexer reads on from where it stopped, and the account a sending or claiming address belongs to.
Used by the deposit indexer (`credit.deposits_index`) and the claim indexer (`claims.claims_index`).
"""

from rewards.chain import checksum_address

from ..chain_records import cursor_get
from ..models import ChainCursor, Wallet


def _cursor(deployment, name: str) -> ChainCursor:
    return cursor_get(ChainCursor, deployment=deployment, name=name, start_block=deployment.deployed_at_block)


def _user_by_address(address: str):
    wallet = Wallet.objects.filter(address=checksum_address(address)).select_related("user").first()
    return wallet.user if wallet else None
