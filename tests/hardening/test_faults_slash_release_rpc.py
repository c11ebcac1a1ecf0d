"""Chain RPC faults while a booked slash's OPEN is released from the Datanet's pool to the treasury: the real
py-evm chain over JSON-RPC behind the proxy that loses the answer of `releasePool` and refuses every lookup of
it. `releasePool` takes no id the contract could refuse twice, so the retry must find the release on chain by
adding up the pool's releases, and send nothing: one `PoolReleased`, the treasury paid once, `chain_reconcile`
in agreement. (The fixtures are the governance fault tests'.)"""

import pytest
from django.core.management import call_command
from test_faults_governance_rpc import OPEN, _heal, _logs, _lose_answer, _run, gov_rpc  # noqa: F401 (a fixture)

from datanets import services as datanet_services
from governance.models import ActionState, SlashState
from governance.services import slashes_book, slashes_release, stake_request, stake_slashes_enforce
from rewards import services as rewards_services
from rewards.models import ChainDeposit, ReconciliationIssue, ReleaseState

pytestmark = pytest.mark.django_db


def _rows(datanet, user, texts, *, reviewer, decision, reason=""):
    contribution = datanet_services.contribution_create_from_rows(
        datanet=datanet, contributor=user, rows=[{"text": text, "label": "a"} for text in texts])
    datanet_services.contribution_validate(contribution_id=contribution.pk)
    datanet_services.records_review(datanet=datanet, reviewer=reviewer, decision=decision, reason=reason,
                                    record_ids=contribution.records.values_list("pk", flat=True))


def test_a_release_whose_answer_is_lost_is_found_on_chain_and_not_sent_again(gov_rpc, alice, charlie):  # noqa: F811
    rpc = gov_rpc
    datanet = datanet_services.datanet_create(owner=alice, name="Faulty pool", task_type="text-classification",
                                              label_set=["a", "b"], visibility="public")
    assert _run(stake_request(user=charlie, datanet=datanet, amount=20 * OPEN)).state == ActionState.DONE
    _rows(datanet, alice, ["refund my double charge", "card charged twice"], reviewer=alice, decision="accept")
    _rows(datanet, charlie, [f"cheap pills {n}" for n in range(3)], reviewer=alice, decision="reject", reason="spam")
    [slash] = stake_slashes_enforce()
    assert slash.state == SlashState.DONE and slash.amount == 5 * OPEN
    datanet_services.version_publish(datanet=datanet, actor=alice)
    [booking] = slashes_book()
    treasury = rpc.client.address
    treasury_before = rpc.token.balance_of(treasury)

    _lose_answer(rpc, rpc.platform_staking, "releasePool")
    [release] = slashes_release()
    assert release.state == ReleaseState.FAILED and "did not confirm" in release.error
    assert len(_logs(rpc.staking, "PoolReleased")) == 1  # ...but it is on chain
    _heal(rpc)
    [release] = slashes_release()  # the next beat: the pool's releases already reach this one's place
    assert release.state == ReleaseState.DONE and release.attempts == 1 and release.key == booking.key
    [event] = _logs(rpc.staking, "PoolReleased")
    assert release.tx_hash == "0x" + bytes(event["transactionHash"]).hex()
    assert rpc.token.balance_of(treasury) == treasury_before + 5 * OPEN  # paid once
    assert rpc.staking.reward_pool(datanet.pk) == 0
    assert slashes_release() == []

    assert rewards_services.deposits_index() == 0 and not ChainDeposit.objects.exists()
    call_command("chain_reconcile")
    assert not ReconciliationIssue.objects.filter(resolved_at__isnull=True).exists()
