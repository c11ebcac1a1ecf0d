"""Contributor stakes on the real in-process chain: a Datanet owner requires a stake, a contributor stakes
from the page, rows a curator rejects as spam (or confirms harmful after a valuation flagged them) count against
it and, past the threshold, part of it is slashed on chain with the evidence shown to the contributor; unstaking waits out the cooldown; reconciliation reports
any difference between the database and the chain."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datanets import services as datanet_services
from governance.models import ActionState, SlashState, StakeEvent, StakeSlash, Vote, WalletAction
from governance.services import (
    governance_index,
    stake_allows_contribution,
    stake_slashes_enforce,
    stakes_index,
    wallet_action_run,
)
from rewards.chain.staking import evidence_hash
from rewards.models import ReconciliationIssue

OPEN = 10**18


@pytest.fixture
def world(governance, dev_signing, alice, charlie, link_wallet, client, django_capture_on_commit_callbacks):
    """Alice owns a Datanet; Charlie contributes from a dev wallet holding 100 OPEN. `post` sends a form as a
    user and returns the action it asked for (run on commit, as the chain worker would)."""
    datanet = datanet_services.datanet_create(owner=alice, name="Support intents", task_type="text-classification",
                                              label_set=["billing", "shipping"], visibility="public")
    wallet = governance.fund(governance.chain.wallets[2], 100 * OPEN)
    link_wallet(charlie, wallet)

    def post(user, url, data):
        client.force_login(user)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, data)
        return response, WalletAction.objects.filter(user=user).order_by("-pk").first()

    def contribute(user, texts):
        with django_capture_on_commit_callbacks(execute=True):
            contribution = datanet_services.contribution_create_from_rows(
                datanet=datanet, contributor=user, rows=[{"text": t, "label": "billing"} for t in texts])
        return list(contribution.records.order_by("pk"))

    return datanet, wallet, post, contribute


def test_spammer_stake_is_slashed_after_rejected_rows_and_sees_why(governance, world, alice, charlie, client):
    datanet, wallet, post, contribute = world
    response = post(alice, f"/governance/datanets/{datanet.slug}/stake/", {"minimum": "10"})[0]
    assert response.status_code == 302
    allowed, reason = stake_allows_contribution(user=charlie, datanet=datanet)
    assert not allowed and reason.startswith("Contributing to Support intents needs 10 OPEN staked on it")
    assert stake_allows_contribution(user=alice, datanet=datanet) == (True, "")  # the owner is exempt
    # Only the owner sets the requirement.
    client.force_login(charlie)
    assert client.post(f"/governance/datanets/{datanet.slug}/stake/", {"minimum": "0"}).status_code == 403

    _, staked = post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "20", "kind": "stake"})
    assert staked.state == ActionState.DONE and staked.relayed
    assert governance.staking.stake_of(wallet.address, datanet.pk).active == 20 * OPEN
    assert governance.chain.token.balance_of(wallet.address) == 80 * OPEN
    assert stake_allows_contribution(user=charlie, datanet=datanet) == (True, "")

    rows = contribute(charlie, [f"buy cheap watches now {n}" for n in range(4)] + ["refund my double charge"])
    spam, fair = rows[:3], rows[3:]
    datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=[r.pk for r in spam[:2]],
                                    decision="reject", reason="Spam: advertising links")
    datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=[fair[0].pk], decision="reject",
                                    reason="Wrong label")  # rejected, but not as spam: does not count
    datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=[fair[1].pk], decision="accept")
    assert stake_slashes_enforce() == []  # two spam rows: under the threshold of three
    datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=[spam[2].pk], decision="reject",
                                    reason="spam again")
    [slash] = stake_slashes_enforce()

    assert slash.state == SlashState.DONE and slash.amount == 5 * OPEN  # 25% of 20 OPEN
    assert [row["id"] for row in slash.rows] == [r.pk for r in spam]
    assert {row["reason"] for row in slash.rows} == {"Spam: advertising links", "spam again"}
    assert slash.evidence_hash == "0x" + evidence_hash(slash.evidence).hex()
    position = governance.staking.stake_of(wallet.address, datanet.pk)
    assert (position.active, governance.staking.reward_pool(datanet.pk)) == (15 * OPEN, 5 * OPEN)
    [event] = StakeEvent.objects.filter(kind="slashed")
    assert event.request_id == slash.evidence_hash and event.tx_hash == slash.tx_hash and event.user == charlie
    # Each row is evidence once: enforcing again slashes nothing more.
    assert stake_slashes_enforce() == [] and StakeSlash.objects.count() == 1
    assert governance.staking.stake_of(wallet.address, datanet.pk).active == 15 * OPEN

    page = client.get("/governance/stakes/").content.decode()  # as charlie
    assert '<data value="5" title="5 OPEN">5 OPEN</data> of your stake went to the Datanet' in page
    assert slash.tx_hash in page
    # Each evidence row links to the contribution page that shows it with the curator's reason.
    contribution_url = f"/datanets/{datanet.slug}/contributions/{spam[0].contribution_id}/"
    assert f'<a href="{contribution_url}">Row r{spam[0].pk}</a>: “Spam: advertising links”' in page
    assert f'<a href="{contribution_url}">Row r{spam[2].pk}</a>: “spam again”' in page
    assert "Spam: advertising links" in client.get(contribution_url).content.decode()
    assert "Wrong label" not in page
    call_command("chain_reconcile")
    assert not ReconciliationIssue.objects.filter(kind__startswith="governance").exists()


def test_rows_a_curator_confirms_harmful_count_against_the_stake(governance, world, alice, charlie, staff, client):
    """Rows the valuation report flags as harmful count once a curator confirms the hold (a flag still under
    review does not), beside rows rejected as spam, and the evidence says which model they harmed."""
    from rewards.holds import earnings_hold_confirm, earnings_hold_for_harm

    datanet, wallet, post, contribute = world
    post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "20", "kind": "stake"})
    rows = contribute(charlie, ["cancel my order", "card charged twice", "cheap pills online"])
    [owners_row] = contribute(alice, ["invoice is wrong"])
    datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=[r.pk for r in rows[:2]],
                                    decision="accept")
    datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=[rows[2].pk], decision="reject",
                                    reason="Spam")
    model = "sha256:" + "9a" * 28
    # The valuation's flag names Charlie's two accepted rows (and, wrongly, Alice's: not his, never counted).
    hold = earnings_hold_for_harm(user_id=charlie.pk, model_version_hash=model, harm=0.3, threshold=0.1,
                                  rows=[rows[0].row_uid, rows[1].row_uid, owners_row.row_uid],
                                  reason="2 of your rows made this model worse")
    assert stake_slashes_enforce() == []  # held for review: not proven yet, so one spam row only
    earnings_hold_confirm(hold=hold, actor=staff, note="labels swapped on purpose")
    [slash] = stake_slashes_enforce()

    assert slash.state == SlashState.DONE and slash.amount == 5 * OPEN  # 25% of 20 OPEN
    assert [row["id"] for row in slash.rows] == [rows[2].pk, rows[0].pk, rows[1].pk]  # spam first, then harm
    harm_reason = (f"Harmful: made model version {model[:16]} worse on its held-out evaluation (valuation report); "
                   "a curator confirmed it: labels swapped on purpose")
    assert slash.rows[1] == {"id": rows[0].pk, "reason": harm_reason, "hold": hold.pk}
    assert slash.evidence_hash == "0x" + evidence_hash(slash.evidence).hex()
    assert governance.staking.stake_of(wallet.address, datanet.pk).active == 15 * OPEN
    assert stake_slashes_enforce() == []  # each row is evidence once
    client.force_login(charlie)
    page = client.get("/governance/stakes/").content.decode()
    assert f"Row r{rows[1].pk}</a>: “{harm_reason}”" in page
    call_command("chain_reconcile")
    assert not ReconciliationIssue.objects.filter(kind__startswith="governance").exists()


def test_unstaking_waits_for_the_cooldown(governance, world, alice, charlie, client):
    datanet, wallet, post, _ = world
    post(alice, f"/governance/datanets/{datanet.slug}/stake/", {"minimum": "10"})
    post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "10", "kind": "stake"})
    _, unstake = post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "4", "kind": "unstake"})
    assert unstake.state == ActionState.DONE
    position = governance.staking.stake_of(wallet.address, datanet.pk)
    assert (position.active, position.unstaking) == (6 * OPEN, 4 * OPEN)
    # Unstaking OPEN no longer counts towards the Datanet's requirement.
    assert not stake_allows_contribution(user=charlie, datanet=datanet)[0]

    _, early = post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "kind": "withdraw"})
    assert early.state == ActionState.FAILED and early.error.startswith("The cooldown is not over")
    assert governance.chain.token.balance_of(wallet.address) == 90 * OPEN
    page = client.get("/governance/stakes/").content.decode()
    assert "The cooldown is not over" in page

    governance.travel(301)  # the cooldown is 300 s
    client.force_login(charlie)
    client.post(f"/governance/actions/{early.pk}/")  # "Try again"
    early = wallet_action_run(action_id=early.pk)
    assert early.state == ActionState.DONE
    assert governance.chain.token.balance_of(wallet.address) == 94 * OPEN
    position = governance.staking.stake_of(wallet.address, datanet.pk)
    assert (position.active, position.unstaking) == (6 * OPEN, 0)
    # Asking again with nothing unstaking is refused in words.
    _, again = post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "kind": "withdraw"})
    assert again.state == ActionState.FAILED and again.error.startswith("Nothing is waiting to be withdrawn")
    call_command("chain_reconcile")


def test_reconcile_reports_stakes_votes_and_slashes_that_differ_from_the_chain(governance, world, alice, charlie):
    datanet, wallet, post, _ = world
    post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "8", "kind": "stake"})
    # A vote on chain, mirrored, then the mirror altered.
    voter = governance.holder(governance.chain.wallets[3], 100 * OPEN)
    actions = governance.parameters.fee_split_proposal(governance.parameters.fee_split(), "Same split")
    governance.governor.propose(actions, sender=voter)
    governance.mine(1)
    governance.governor.cast_vote(actions.proposal_id, "for", sender=voter)
    governance_index()
    Vote.objects.update(weight=1)
    # A slash the platform never decided (sent straight from its key), and a stake event lost from the mirror.
    governance.staking.slash(wallet.address, datanet.pk, OPEN, b"\x42" * 32)
    stakes_index()
    StakeEvent.objects.filter(kind="staked").delete()

    with pytest.raises(CommandError):
        call_command("chain_reconcile")
    kinds = set(ReconciliationIssue.objects.values_list("kind", flat=True))
    assert {"governance_votes_mismatch", "governance_stake_mismatch", "governance_slash_unexplained"} <= kinds
    stake_issue = ReconciliationIssue.objects.filter(kind="governance_stake_mismatch").first()
    assert wallet.address in stake_issue.detail or "in all" in stake_issue.detail


def test_an_unstaked_contributor_is_refused_at_upload_with_the_reason(governance, world, alice, charlie):
    from django.core.exceptions import PermissionDenied

    from datanets.models import Contribution

    datanet, wallet, post, contribute = world
    assert post(alice, f"/governance/datanets/{datanet.slug}/stake/", {"minimum": "10"})[0].status_code == 302
    with pytest.raises(PermissionDenied, match="needs 10 OPEN staked on it"):
        contribute(charlie, ["refund my double charge"])
    assert not Contribution.objects.filter(contributor=charlie).exists()  # refused before anything is stored
    post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "10", "kind": "stake"})
    assert [r.fields["text"] for r in contribute(charlie, ["refund my double charge"])] == ["refund my double charge"]


def test_each_account_stakes_its_own_so_a_second_account_costs_another_stake(governance, world, alice, charlie, dora,
                                                                            link_wallet):
    """A sybil cannot ride on another account's stake: a wallet links to one account only, and the requirement
    counts only the account's own wallets, so every extra account costs the required stake again."""
    from django.core.exceptions import ValidationError

    datanet, wallet, post, contribute = world
    post(alice, f"/governance/datanets/{datanet.slug}/stake/", {"minimum": "10"})
    post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "10", "kind": "stake"})
    assert stake_allows_contribution(user=charlie, datanet=datanet) == (True, "")
    with pytest.raises(ValidationError, match="linked to another account"):
        link_wallet(dora, wallet)  # the staked wallet cannot be shared
    assert not stake_allows_contribution(user=dora, datanet=datanet)[0]
    second = governance.fund(governance.chain.wallets[3], 10 * OPEN)
    link_wallet(dora, second)
    assert not stake_allows_contribution(user=dora, datanet=datanet)[0]  # a wallet is not a stake
    _, staked = post(dora, "/governance/stakes/", {"datanet": datanet.slug, "amount": "10", "kind": "stake"})
    assert staked.state == ActionState.DONE
    assert stake_allows_contribution(user=dora, datanet=datanet) == (True, "")
    assert governance.staking.totals()["active"] == 20 * OPEN  # two accounts, two stakes locked on chain


def test_the_contribute_page_says_a_stake_is_needed_and_keeps_the_form(governance, world, alice, charlie, client):
    datanet, wallet, post, contribute = world
    post(alice, f"/governance/datanets/{datanet.slug}/stake/", {"minimum": "10"})
    client.force_login(charlie)
    response = client.post(f"/datanets/{datanet.slug}/contribute/", {"row-0-text": "where is my parcel",
                                                                      "row-0-label": "shipping"})
    assert response.status_code == 200
    assert "needs 10 OPEN staked on it" in response.content.decode()
