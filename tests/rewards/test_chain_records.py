"""`rewards/chain_records.py`: the deployment records and event cursors that rewards and governance both keep,
read and written by one set of helpers, on the real in-process chain."""

import pytest

from governance.models import GovernanceCursor, GovernanceDeployment
from rewards.chain_records import (
    cursor_advance,
    cursor_get,
    deployment_get_or_record,
    deployment_recorded,
    genesis_hash,
)
from rewards.models import ChainCursor, ChainDeployment

ADDRESS = "0x" + "11" * 20


def _governance_defaults(block=5):
    return {"token_address": ADDRESS, "votes_address": ADDRESS, "timelock_address": ADDRESS,
            "governor_address": ADDRESS, "parameters_address": ADDRESS, "deployed_at_block": block}


def test_both_apps_deployments_are_keyed_by_chain_and_genesis(chain):
    client = chain.client
    assert deployment_recorded(ChainDeployment, client=client) == chain.deployment
    assert deployment_recorded(GovernanceDeployment, client=client) is None

    governance, created = deployment_get_or_record(GovernanceDeployment, client=client, defaults=_governance_defaults())
    assert created and (governance.chain_id, governance.genesis_hash) == (client.chain_id, genesis_hash(client))
    again, created = deployment_get_or_record(GovernanceDeployment, client=client,
                                              defaults=_governance_defaults(block=99))
    assert (again, created) == (governance, False) and again.deployed_at_block == 5  # recorded once, not rewritten
    assert deployment_recorded(GovernanceDeployment, client=client) == governance

    # A row of another chain (a restarted development chain: same id, new genesis) is not this chain's.
    ChainDeployment.objects.filter(pk=chain.deployment.pk).update(genesis_hash="0x" + "00" * 32)
    assert deployment_recorded(ChainDeployment, client=client) is None


@pytest.mark.parametrize("model", [ChainCursor, GovernanceCursor])
def test_cursor_starts_once_and_never_moves_back(chain, model):
    if model is ChainCursor:
        deployment = chain.deployment
    else:
        deployment, _ = deployment_get_or_record(GovernanceDeployment, client=chain.client,
                                                 defaults=_governance_defaults())
    cursor = cursor_get(model, deployment=deployment, name="stream", start_block=7)
    assert cursor.next_block == 7
    assert cursor_get(model, deployment=deployment, name="stream", start_block=100).pk == cursor.pk  # kept
    assert cursor_get(model, deployment=deployment, name="other", start_block=3).next_block == 3  # per stream

    cursor_advance(cursor, to_block=20)
    cursor.refresh_from_db()
    assert cursor.next_block == 21
    stale = model.objects.get(pk=cursor.pk)
    cursor_advance(cursor, to_block=40)  # another indexer got further...
    cursor_advance(stale, to_block=30)  # ...so a slower one finishing later leaves it where it is
    stale.refresh_from_db()
    assert stale.next_block == 41
    assert model.objects.filter(deployment=deployment).count() == 2
