"""A booked slash's OPEN leaves the Datanet's pool in the stakes contract for the treasury that funds the epochs,
on the real in-process chain: the governance beat sends `releasePool` once per booked slash, records it (with an
audit row), and the next epoch close is funded by the slashed OPEN, not by the treasury's own. A lost answer or
a send still waiting in the node never releases twice, even with a second slash waiting in the same pool; the
release to the treasury is not mistaken for a deposit; `chain_reconcile` reports booked and released OPEN that
disagree."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from web3 import EthereumTesterProvider, Web3

from accounts.models import AuditEvent
from datanets import services as datanet_services
from governance.services import slashes_book, slashes_release, stake_slashes_enforce
from governance.services.reconcile import governance_reconcile
from governance.tasks import chain_index_governance
from rewards import services as rewards_services
from rewards.chain import ChainClient, TransactionPolicy
from rewards.chain.staking import StakingContract
from rewards.models import (
    ChainDeposit,
    EpochState,
    ReconciliationIssue,
    ReleaseState,
    SlashBooking,
    SlashRelease,
)

OPEN = 10**18


class LosingProvider(EthereumTesterProvider):
    """The shared in-process chain behind a transport that loses chosen answers: each (method, when) in `faults`
    is used once; "after" lets the chain execute the call and loses its answer, "before" loses the call."""

    def __init__(self, tester):
        super().__init__(tester)
        self.faults: list[tuple[str, str]] = []

    def make_request(self, method, params):
        fault = next((f for f in self.faults if f[0] == method), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault[1] == "before":
                raise ConnectionError(f"{method}: connection reset before the node saw it")
        response = super().make_request(method, params)
        if fault is not None:
            raise ConnectionError(f"{method}: connection reset, answer lost")
        return response


@pytest.fixture
def pool(governance, dev_signing, alice, dora, charlie, link_wallet, client, django_capture_on_commit_callbacks):
    """Alice owns a Datanet with an accepted row from Dora; Charlie stakes 20 OPEN on it from the page. `spam(n)`
    has Charlie send n rows Alice rejects as spam; `publish()` publishes a version (someone to pay)."""
    datanet = datanet_services.datanet_create(owner=alice, name="Support intents", task_type="text-classification",
                                              label_set=["billing", "shipping"], visibility="public")
    link_wallet(alice, governance.chain.wallets[0])
    link_wallet(dora, governance.chain.wallets[1])
    spammer = governance.fund(governance.chain.wallets[2], 100 * OPEN)
    link_wallet(charlie, spammer)
    client.force_login(charlie)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/governance/stakes/", {"datanet": datanet.slug, "amount": "20", "kind": "stake"})
    assert governance.staking.stake_of(spammer.address, datanet.pk).active == 20 * OPEN

    def rows(user, texts):
        with django_capture_on_commit_callbacks(execute=True):
            contribution = datanet_services.contribution_create_from_rows(
                datanet=datanet, contributor=user, rows=[{"text": t, "label": "billing"} for t in texts])
        return list(contribution.records.values_list("pk", flat=True))

    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept", reason="",
                                    record_ids=rows(dora, ["where is my parcel"]))
    sent = [0]

    def spam(count):
        texts = [f"buy cheap watches now {sent[0] + n}" for n in range(count)]
        sent[0] += count
        datanet_services.records_review(datanet=datanet, reviewer=alice, decision="reject",
                                        reason="Spam: advertising links", record_ids=rows(charlie, texts))

    def publish():
        return datanet_services.version_publish(datanet=datanet, actor=alice, notes="v")

    return datanet, spam, publish


def _releases(governance) -> list:
    return list(governance.staking.contract.events.PoolReleased().get_logs(from_block=0))


def _losing_staking(governance, *, faults=(), policy=None):
    """The platform's stakes contract reached through a transport that loses the answers in `faults`, signing
    with the platform's key like the real client (its own nonce tracker: the shared client forgets its own)."""
    chain = governance.chain
    provider = LosingProvider(chain.client.local_chain.tester)
    provider.faults = list(faults)
    client = ChainClient(Web3(provider), chain.client.signer, local_chain=chain.client.local_chain,
                         policy=policy or TransactionPolicy(send_attempts=2, retry_backoff_s=0))
    return StakingContract(client, governance.staking.address), provider


def test_the_beat_releases_a_booked_slash_once_and_the_epoch_is_funded_by_it(governance, pool, dora, admin_client):
    datanet, spam, publish = pool
    treasury = governance.chain.treasury.address
    token = governance.chain.token
    spam(3)
    publish()
    chain_index_governance()  # index, slash (5 OPEN: 25% of 20), book, release
    booking = SlashBooking.objects.get()
    release = SlashRelease.objects.get()
    assert (release.booking, release.key, release.amount, release.released_through) == (
        booking, booking.key, 5 * OPEN, 5 * OPEN)
    assert release.state == ReleaseState.DONE and release.attempts == 1
    assert (release.recipient, release.staking_address, release.datanet_id) == (
        treasury, governance.staking.address, datanet.pk)
    [event] = _releases(governance)
    assert (event["args"]["datanetId"], event["args"]["to"], event["args"]["amount"]) == (datanet.pk, treasury, 5 * OPEN)
    assert release.tx_hash == "0x" + bytes(event["transactionHash"]).hex()
    assert governance.staking.reward_pool(datanet.pk) == 0
    audit = AuditEvent.objects.get(action="rewards.slash_released")
    assert audit.object_id == str(release.pk) and audit.details["tx_hash"] == release.tx_hash
    page = admin_client.get("/admin/rewards/slashrelease/")
    assert page.status_code == 200 and release.tx_hash in page.content.decode()

    # Once: the beat and the service again send nothing.
    treasury_after_release = token.balance_of(treasury)
    chain_index_governance()
    assert slashes_release() == [] and len(_releases(governance)) == 1
    assert token.balance_of(treasury) == treasury_after_release

    # The release into the treasury (the deposit address by default) is not a user's deposit.
    assert rewards_services.deposits_index() == 0
    assert not ChainDeposit.objects.exists()
    assert not ReconciliationIssue.objects.filter(kind="unmatched_deposit").exists()

    # The epoch paying Dora's share of the slash is funded with exactly the OPEN the pool released.
    epoch = rewards_services.epoch_close()
    assert epoch.state == EpochState.CLOSED and epoch.funded_amount == 5 * OPEN
    assert token.balance_of(treasury) == treasury_after_release - 5 * OPEN
    call_command("chain_reconcile")  # no difference: exits without an error
    assert not ReconciliationIssue.objects.filter(resolved_at__isnull=True).exists()


def test_a_lost_answer_never_releases_twice_even_with_another_slash_in_the_pool(governance, pool):
    datanet, spam, publish = pool
    spam(3)
    publish()
    stake_slashes_enforce()
    slashes_book()
    # The node executes the release; its answer and every lookup of it are lost.
    staking, provider = _losing_staking(governance, faults=[
        ("eth_sendRawTransaction", "after"), ("eth_getTransactionByHash", "before"),
        ("eth_getTransactionByHash", "before")])
    [first] = rewards_services.slash_releases_send(staking=staking, bookings=SlashBooking.objects.all(),
                                                   from_block=governance.record.staking_deployed_at_block)
    assert first.state == ReleaseState.FAILED and "did not confirm" in first.error and first.attempts == 1
    assert provider.faults == [] and len(_releases(governance)) == 1  # ...but it is on chain
    governance.chain.client.nonces.forget()  # another client used the platform's key

    # A second slash lands in the same pool before the retry: 25% of the 15 OPEN left.
    spam(3)
    stake_slashes_enforce()
    slashes_book()
    assert governance.staking.reward_pool(datanet.pk) == 15 * OPEN // 4
    touched = slashes_release()  # the next beat: finds the first on chain, sends only the second
    assert [r.state for r in touched] == [ReleaseState.DONE, ReleaseState.DONE]
    first, second = SlashRelease.objects.order_by("released_through")
    assert (first.attempts, second.attempts) == (1, 1)
    assert (first.released_through, second.released_through) == (5 * OPEN, 5 * OPEN + 15 * OPEN // 4)
    events = _releases(governance)
    assert [e["args"]["amount"] for e in events] == [5 * OPEN, 15 * OPEN // 4]
    assert [r.tx_hash for r in (first, second)] == ["0x" + bytes(e["transactionHash"]).hex() for e in events]
    assert governance.staking.reward_pool(datanet.pk) == 0
    assert slashes_release() == [] and len(_releases(governance)) == 2
    assert [i.kind for i in governance_reconcile()] == []


def test_a_release_still_waiting_in_the_node_is_waited_for_not_sent_beside(governance, pool):
    datanet, spam, publish = pool
    spam(3)
    publish()
    stake_slashes_enforce()
    slashes_book()
    tester = governance.chain.client.local_chain.tester
    staking, _ = _losing_staking(governance, policy=TransactionPolicy(receipt_timeout_s=0.3, poll_interval_s=0.05))
    tester.disable_auto_mine_transactions()
    try:
        [release] = rewards_services.slash_releases_send(staking=staking, bookings=SlashBooking.objects.all(),
                                                         from_block=governance.record.staking_deployed_at_block)
        assert release.state == ReleaseState.FAILED and "not confirmed in time" in release.error
        assert staking.transaction_pending(release.tx_hash)
        [waiting] = rewards_services.slash_releases_send(staking=staking, bookings=[],
                                                         from_block=governance.record.staking_deployed_at_block)
        assert waiting.state == ReleaseState.FAILED and waiting.attempts == 1  # nothing sent beside it
    finally:
        tester.enable_auto_mine_transactions()  # mines what waited
    governance.chain.client.nonces.forget()
    [done] = slashes_release()
    assert done.state == ReleaseState.DONE and done.attempts == 1 and done.tx_hash == release.tx_hash
    assert len(_releases(governance)) == 1 and governance.staking.reward_pool(datanet.pk) == 0


def test_chain_reconcile_reports_booked_and_released_slashes_that_disagree(governance, pool):
    datanet, spam, publish = pool
    spam(3)
    publish()
    stake_slashes_enforce()
    slashes_book()  # booked, not released yet
    with pytest.raises(CommandError):
        call_command("chain_reconcile")
    issue = ReconciliationIssue.objects.get(kind="slash_release_mismatch")
    assert issue.detail.startswith(f"Datanet {datanet.pk}: slashes booked to its contributors add up to 5 OPEN; "
                                   "the books record 0 OPEN released from its pool; the stakes contract has "
                                   "released 0 OPEN on chain (1 booked slash(es) not released yet")

    [release] = slashes_release()
    assert release.state == ReleaseState.DONE
    assert [i.kind for i in governance_reconcile()] == []  # booked = recorded = released

    # A release the books place elsewhere than the chain does is reported.
    SlashRelease.objects.filter(pk=release.pk).update(recipient=governance.chain.wallets[5].address)
    [issue] = governance_reconcile()
    assert issue.kind == "slash_release_mismatch"
    assert f"on chain that transaction is paid to {governance.chain.treasury.address}" in issue.detail

    # A release the pool never made (recorded done, not on chain) is reported too.
    SlashRelease.objects.filter(pk=release.pk).update(recipient=governance.chain.treasury.address, amount=6 * OPEN)
    [issue] = governance_reconcile()
    assert "the books record 6 OPEN released from its pool; the stakes contract has released 5 OPEN" in issue.detail


def test_a_refused_release_is_recorded_with_the_contracts_reason_and_retried(governance, pool):
    datanet, spam, publish = pool
    spam(3)
    publish()
    stake_slashes_enforce()
    slashes_book()
    # The platform's key lost the slasher role (revoked by a proposal): the contract refuses, in words.
    staking, _ = _losing_staking(governance)
    outsider = governance.chain.wallets[6]
    refused_staking = StakingContract(ChainClient(staking.client.w3, outsider, local_chain=staking.client.local_chain),
                                      governance.staking.address)
    [release] = rewards_services.slash_releases_send(staking=refused_staking, bookings=SlashBooking.objects.all(),
                                                     from_block=governance.record.staking_deployed_at_block,
                                                     treasury=governance.chain.treasury.address)
    assert release.state == ReleaseState.FAILED
    assert release.error == f"{outsider.address} is not allowed to do this (it lacks the platform's role)."
    assert AuditEvent.objects.filter(action="rewards.slash_release_failed").count() == 1
    assert _releases(governance) == []
    [release] = slashes_release()  # the platform's key: the next beat releases it
    assert release.state == ReleaseState.DONE and release.error == "" and release.attempts == 2


def test_a_pool_another_run_is_sending_is_left_to_it_until_its_lease_ends(governance, pool):
    datanet, spam, publish = pool
    spam(3)
    publish()
    stake_slashes_enforce()
    slashes_book()
    block = governance.record.staking_deployed_at_block
    [release] = slashes_release()
    assert release.state == ReleaseState.DONE
    # A second slash; another run holds the pool (it has read the pool's releases and is sending): this run
    # records the release and sends nothing.
    spam(3)
    stake_slashes_enforce()
    slashes_book()
    SlashRelease.objects.filter(pk=release.pk).update(pool_lease_until=timezone.now() + timedelta(minutes=5))
    assert slashes_release() == []
    second = SlashRelease.objects.exclude(pk=release.pk).get()
    assert second.state == ReleaseState.PENDING and second.attempts == 0 and len(_releases(governance)) == 1
    # Its lease ended (it crashed): the next run takes the pool, asks the chain and sends.
    SlashRelease.objects.filter(pk=release.pk).update(pool_lease_until=timezone.now() - timedelta(seconds=1))
    staking = StakingContract(governance.chain.client, governance.staking.address)
    [second] = rewards_services.slash_releases_send(staking=staking, bookings=[], from_block=block)
    assert second.state == ReleaseState.DONE and second.attempts == 1 and len(_releases(governance)) == 2
    assert SlashRelease.objects.get(pk=release.pk).pool_lease_until is None  # let go when done
