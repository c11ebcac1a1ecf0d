"""Governance of the epoch length and of attribution's share policy, end to end on the real in-process chain:
propose, vote, queue, execute through the timelock; the indexer mirrors the registry's change as a
`GovernedValue` linked to the proposal, and from then on the epoch close schedule and attribution's share
policy use it instead of the settings. A value outside the registry's bounds is refused in words before it is
proposed, and by the registry itself if voted through anyway."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from attribution.services.loading import _share_policy
from governance.models import (
    ActionState,
    ChangeKind,
    GovernedParameter,
    GovernedValue,
    Proposal,
    WalletAction,
)
from governance.selectors import epoch_length_in_force, share_policy_in_force
from governance.services import governance_index, governance_reconcile
from rewards import services as rewards_services
from rewards.chain import ChainRevert
from rewards.chain.governance import SharePolicyValues, parameter_refusal
from rewards.models import Epoch, EpochState
from rewards.tasks import epoch_close_scheduled

OPEN = 10**18
HOUR, DAY = 3_600, 86_400


def _pass(gov, actions, voter):
    """Propose, vote for, wait out the period, queue and execute (the timelock's delay is one block)."""
    gov.governor.propose(actions, sender=voter)
    gov.mine(1)
    gov.governor.cast_vote(actions.proposal_id, "for", sender=voter)
    gov.mine(10)
    gov.governor.queue(actions, sender=voter)
    return gov.governor.execute(actions, sender=voter)


@pytest.fixture
def paid_epoch(governance, dora, alice, charlie, link_wallet, grant):
    """Epoch 1 closed on chain (Dora earned, Alice owns the model), then more earnings waiting for epoch 2."""
    grant(charlie, 100 * OPEN)
    link_wallet(dora, governance.chain.wallets[5])
    link_wallet(alice, governance.chain.wallets[6])

    def earn(n):
        rewards_services.fee_settle(inference_id=f"epoch-fee-{n}", payer=charlie, model_owner=alice, fee=OPEN,
                                    contributor_shares={dora.pk: 1_000_000}, model_version_hash="ef" * 32)

    earn(1)
    first = rewards_services.epoch_close()
    assert first.number == 1 and first.state == EpochState.CLOSED
    earn(2)
    return first


def test_a_passed_proposal_sets_the_epoch_length_and_the_schedule_closes_by_it(governance, paid_epoch, settings):
    gov, voter = governance, governance.chain.wallets[0]
    gov.holder(voter, 1_000 * OPEN)
    assert settings.REWARDS_EPOCH_LENGTH_S == 7 * DAY
    assert epoch_length_in_force() == {"seconds": 7 * DAY, "governed": None}
    # Two hours after epoch 1 froze: a week has not passed, so the beat queues nothing.
    Epoch.objects.filter(pk=paid_epoch.pk).update(frozen_at=timezone.now() - timedelta(hours=2))
    assert not rewards_services.epoch_close_due()
    epoch_close_scheduled()
    assert Epoch.objects.count() == 1

    actions = gov.parameters.epoch_length_proposal(HOUR, "Close epochs every hour")
    executed = _pass(gov, actions, voter)
    assert gov.parameters.epoch_length_s() == HOUR
    governance_index()
    proposal = Proposal.objects.get(proposal_id=str(actions.proposal_id))
    assert proposal.state == "executed" and proposal.change_kind == ChangeKind.EPOCH_LENGTH
    assert proposal.change == {"epoch_length_s": HOUR} and proposal.change_words == "Epoch length: 1 hour"
    [value] = GovernedValue.objects.all()
    assert (value.parameter, value.epoch_length_s, value.registry_version) == (GovernedParameter.EPOCH_LENGTH, HOUR, 1)
    assert value.proposal == proposal and value.tx_hash == executed.tx_hash == proposal.executed_tx_hash
    audit = AuditEvent.objects.get(action="governance.parameter_applied", object_id=str(value.pk))
    assert audit.details["epoch_length_s"] == HOUR and audit.details["tx_hash"] == executed.tx_hash
    assert epoch_length_in_force() == {"seconds": HOUR, "governed": value}
    assert governance_index() == 0 and GovernedValue.objects.count() == 1  # mirrored once

    # The same two hours are now past the governed length: the beat queues the close, which pays epoch 2.
    assert rewards_services.epoch_close_due()
    epoch_close_scheduled()
    second = Epoch.objects.get(number=2)
    assert second.state == EpochState.CLOSED and gov.chain.distributor.epoch() == 2
    assert not rewards_services.epoch_close_due()  # epoch 2 froze just now: the next one is an hour away
    assert rewards_services.epoch_close_due(now=second.frozen_at + timedelta(seconds=HOUR))

    # Reconciliation: the database agrees with the registry; a mirrored value changed behind its back is reported.
    assert not [i for i in governance_reconcile() if i.kind.startswith("governance")]
    GovernedValue.objects.filter(pk=value.pk).update(epoch_length_s=2 * HOUR)
    [issue] = [i for i in governance_reconcile() if i.kind == "governance_parameter_mismatch"]
    assert issue.detail == "The registry's epoch length is 3,600 s; the value in force in the database is 7,200 s."


def test_without_a_governed_length_the_setting_decides(governance, paid_epoch, settings):
    settings.REWARDS_EPOCH_LENGTH_S = 2 * HOUR
    frozen = paid_epoch.frozen_at
    assert not rewards_services.epoch_close_due(now=frozen + timedelta(seconds=2 * HOUR - 1))
    assert rewards_services.epoch_close_due(now=frozen + timedelta(seconds=2 * HOUR))
    # A close stopped after too many attempts waits for a person, whatever the length.
    Epoch.objects.filter(pk=paid_epoch.pk).update(state=EpochState.FUNDED, attempts=99, lease_until=None)
    assert not rewards_services.epoch_close_due(now=frozen + timedelta(days=30))


@pytest.fixture
def voters(governance, dev_signing, alice, bob, link_wallet, client, django_capture_on_commit_callbacks):
    wallets = {alice.pk: governance.chain.wallets[0], bob.pk: governance.chain.wallets[1]}
    for user in (alice, bob):
        link_wallet(user, wallets[user.pk])
        governance.fund(wallets[user.pk], 2_000 * OPEN)

    def post(user, url, data):
        client.force_login(user)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, data)
        return response, WalletAction.objects.filter(user=user).order_by("-pk").first()

    return post


def test_pages_carry_a_share_policy_from_proposal_to_the_policy_attribution_uses(governance, voters, alice, staff,
                                                                                client, settings):
    gov, post = governance, voters
    settings.ATTRIBUTION_FDR, settings.ATTRIBUTION_TOP_GROUPS = 0.1, 50
    assert (_share_policy().fdr, _share_policy().top_groups) == (0.1, 50)  # the settings, before any proposal
    post(alice, "/governance/delegate/", {"amount": "1000", "delegatee": ""})
    client.force_login(alice)
    page = client.get("/governance/propose/?change=share_policy").content.decode()
    assert "false-discovery rate 0.1, at most 50 groups" in page and "(the platform's settings)" in page

    # Out of the registry's bounds: refused on the page with its reason in words; nothing is proposed.
    before = WalletAction.objects.count()
    for data, reason in (
            ({"fdr": "0.5", "top_groups": "100"}, "The false-discovery rate is 0.5; the registry allows 0.01 to 0.2."),
            ({"fdr": "0.05", "top_groups": "500"},
             "The most credit groups paid per answer is 500; the registry allows 10 to 200.")):
        response, _ = post(alice, "/governance/propose/", {"change": "share_policy", "description": "x", **data})
        assert response.status_code == 200 and reason in response.content.decode()
    response, _ = post(alice, "/governance/propose/", {"change": "epoch_length", "epoch_length_hours": "0.5",
                                                       "description": "Half-hourly"})
    assert "The epoch length is 30 minutes; the registry allows 1 hour to 30 days." in response.content.decode()
    response, _ = post(alice, "/governance/propose/", {"change": "share_policy", "fdr": "1.5", "top_groups": "100",
                                                       "description": "Not a rate"})
    assert "Ensure this value is less than or equal to 0.9999." in response.content.decode()
    assert WalletAction.objects.count() == before and not Proposal.objects.exists()

    response, proposed = post(alice, "/governance/propose/", {"change": "share_policy", "fdr": "0.05",
                                                              "top_groups": "100", "description": "Stricter FDR"})
    assert proposed.state == ActionState.DONE, proposed.error
    proposal = Proposal.objects.get(proposal_id=proposed.params["proposal_id"])
    assert proposal.change_kind == ChangeKind.SHARE_POLICY
    assert proposal.change == {"fdr_bps": 500, "fdr": "0.05", "top_groups": 100}
    assert proposed.params["change"] == {"kind": "share_policy", **proposal.change}
    gov.mine(1)
    governance_index()
    _, vote = post(alice, f"/governance/proposals/{proposal.pk}/vote/", {"support": "for"})
    assert vote.state == ActionState.DONE
    gov.mine(10)
    governance_index()
    _, queued = post(staff, f"/governance/queue/{proposal.pk}/", {"step": "queue"})
    _, executed = post(staff, f"/governance/queue/{proposal.pk}/", {"step": "execute"})
    assert queued.state == executed.state == ActionState.DONE, executed.error
    assert gov.parameters.share_policy() == SharePolicyValues(500, 100)

    value = GovernedValue.objects.get(parameter=GovernedParameter.SHARE_POLICY)
    assert (value.attribution_fdr_bps, value.attribution_top_groups, value.proposal) == (500, 100, proposal)
    assert share_policy_in_force() == {"fdr": 0.05, "top_groups": 100, "governed": value}
    policy = _share_policy()  # what the attribution worker builds its Attributor with
    assert (policy.fdr, policy.top_groups) == (0.05, 100)
    assert policy.rows_per_contributor == settings.ATTRIBUTION_ROWS_PER_CONTRIBUTOR
    detail = client.get(f"/governance/proposals/{proposal.pk}/").content.decode()
    assert "Share policy: false-discovery rate 0.05, at most 100 credit groups paid per answer" in detail
    assert "Attribution share policy version 1, in force from" in detail
    assert "Share policy: false-discovery rate 0.05" in client.get("/governance/").content.decode()
    client.force_login(alice)
    page = client.get("/governance/propose/?change=share_policy").content.decode()
    assert "false-discovery rate 0.05, at most 100 groups" in page
    assert f'href="/governance/proposals/{proposal.pk}/">a proposal</a>' in page


def test_a_bad_value_voted_through_is_refused_at_execute_and_nothing_changes(governance):
    gov, voter = governance, governance.chain.wallets[0]
    gov.holder(voter, 1_000 * OPEN)
    with pytest.raises(ChainRevert) as checked:
        gov.parameters.check_epoch_length(31 * DAY)
    assert parameter_refusal(checked.value) == "The epoch length is 31 days; the registry allows 1 hour to 30 days."
    gov.parameters.check_share_policy(SharePolicyValues(100, 10))  # the bounds themselves are allowed
    with pytest.raises(ChainRevert) as direct:  # only the timelock may set it
        gov.parameters.set_epoch_length(DAY, sender=voter)
    assert direct.value.error_name == "OwnableUnauthorizedAccount"

    actions = gov.parameters.share_policy_proposal(SharePolicyValues(50, 100), "Pay groups at fdr 0.005")
    with pytest.raises(ChainRevert) as executed:
        _pass(gov, actions, voter)
    assert parameter_refusal(executed.value) == "The false-discovery rate is 0.005; the registry allows 0.01 to 0.2."
    assert gov.governor.state(actions.proposal_id) == "queued" and gov.parameters.share_policy() is None
    governance_index()
    assert Proposal.objects.get(proposal_id=str(actions.proposal_id)).state == "queued"
    assert not GovernedValue.objects.exists()
    assert share_policy_in_force()["governed"] is None


def test_a_proposal_below_quorum_changes_no_parameter(governance):
    gov, (whale, minnow) = governance, governance.chain.wallets[:2]
    gov.holder(whale, 1_000 * OPEN)
    gov.holder(minnow, 10 * OPEN)  # under 1% of vOPEN: quorum is 4%
    actions = gov.parameters.epoch_length_proposal(DAY, "Daily epochs")
    gov.governor.propose(actions, sender=minnow)
    gov.mine(1)
    gov.governor.cast_vote(actions.proposal_id, "for", sender=minnow)
    gov.mine(10)
    governance_index()
    assert Proposal.objects.get().state == "defeated"
    assert gov.parameters.epoch_length_s() == 0 and not GovernedValue.objects.exists()
    assert epoch_length_in_force()["governed"] is None
