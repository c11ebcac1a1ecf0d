"""What every mirror of the chain keeps, written once for rewards and governance.

* A **deployment record**: the addresses of a set of contracts on one chain, keyed by chain id and genesis
  hash, so a restarted development chain (new genesis) gets a new row. `rewards.ChainDeployment` (OPEN and
  the distributor) and `governance.GovernanceDeployment` (vOPEN, timelock, governor, registry, stakes) are
  two such records: `deployment_recorded` finds one for the current chain, `deployment_get_or_record`
  writes it once even when two processes race.
* An **event cursor** per (deployment, event stream): the next block an indexer reads from.
  `rewards.ChainCursor` (streams `deposits`, `claims`) and `governance.GovernanceCursor` (`governance`,
  `stakes`) are the same shape; `cursor_get` starts one at the stream's first block, `cursor_advance` moves
  it past the blocks read and never back (an indexer that ran side by side and got further keeps its
  place).

The two apps keep their own tables (each cursor's foreign key is its own app's deployment, and every
proposal, vote, stake, epoch, deposit and claim points at its app's deployment); the code that reads and
writes them is this module.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from rewards.chain import ChainClient


def genesis_hash(client: ChainClient) -> str:
    return "0x" + bytes(client.w3.eth.get_block(0)["hash"]).hex()


def deployment_recorded(model, *, client: ChainClient):
    """The `model` row recorded for the client's chain (chain id and genesis hash), or None."""
    return model.objects.filter(chain_id=client.chain_id, genesis_hash=genesis_hash(client)).first()


def deployment_get_or_record(model, *, client: ChainClient, defaults: dict):
    """(row, created): the `model` row of the client's chain, recorded with `defaults` when there is none.
    Two processes recording at once both get the one row (the unique (chain id, genesis) constraint)."""
    chain_id, genesis = client.chain_id, genesis_hash(client)
    try:
        with transaction.atomic():
            return model.objects.get_or_create(chain_id=chain_id, genesis_hash=genesis, defaults=defaults)
    except IntegrityError:
        return model.objects.get(chain_id=chain_id, genesis_hash=genesis), False


def cursor_get(model, *, deployment, name: str, start_block: int):
    """The `model` cursor of `deployment`'s event stream `name`, started at `start_block` the first time."""
    cursor, _ = model.objects.get_or_create(deployment=deployment, name=name, defaults={"next_block": start_block})
    return cursor


def cursor_advance(cursor, *, to_block: int) -> None:
    """Blocks up to `to_block` are read: the next read starts after it. Never moves a cursor back."""
    type(cursor).objects.filter(pk=cursor.pk, next_block__lt=to_block + 1).update(next_block=to_block + 1)

