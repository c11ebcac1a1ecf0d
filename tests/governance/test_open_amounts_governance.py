"""Issue #22: the governance pages show OPEN and vOPEN amounts as the rewards pages do (`|open_rounded`): rounded
to 6 decimals for reading, the exact amount kept in `<data value>` and `title`. Votes are labelled vOPEN (the unit
they are cast in), OPEN held and staked OPEN. The amounts are made on the real in-process chain with 18-decimal
noise, mirrored by the indexers, and each page is rendered as its reader gets it."""

import re
from html import escape

from governance.services import governance_index, stakes_index
from rewards.amounts import format_open, format_open_rounded
from rewards.chain.governance import FeeSplit

OPEN = 10**18
BIG = 1_234 * OPEN + 567_890_500_000_000_003  # 1,234.567890500000000003: rounds up to 1,234.567891
NOISY = 10 * OPEN + 7  # 10.000000000000000007: rounds to 10


def shown(amount: int, unit: str = "OPEN") -> str:
    """The markup `|open_rounded` gives an amount: the rounded figure as text, the exact one in value and title."""
    return (f'<data value="{format_open(amount, grouping=False)}" title="{format_open(amount)} {unit}">'
            f'{escape(format_open_rounded(amount))} {unit}</data>')


def visible_text(page: str) -> str:
    return re.sub(r"<[^>]+>", " ", page)


def test_proposal_pages_round_the_votes_and_keep_the_exact_weights(governance, client):
    gov, (voter, small_voter) = governance, governance.chain.wallets[:2]
    gov.holder(voter, BIG)
    gov.holder(small_voter, NOISY)
    actions = gov.parameters.fee_split_proposal(FeeSplit(500, 2_500, 7_000), "Pay data 70% of every fee")
    gov.governor.propose(actions, sender=voter)
    gov.mine(1)
    gov.governor.cast_vote(actions.proposal_id, "for", "data deserves more", sender=voter)
    gov.governor.cast_vote(actions.proposal_id, "against", sender=small_voter)
    governance_index()

    listing = client.get("/governance/").content.decode()
    assert f"<td>{shown(BIG, 'vOPEN')}</td><td>{shown(NOISY, 'vOPEN')}</td><td>{shown(0, 'vOPEN')}</td>" in listing
    assert ">1,234.567891 vOPEN</data>" in listing and ">10 vOPEN</data>" in listing
    assert "1,234.567890500000000003" not in visible_text(listing)  # exact only in the markup

    proposal_url = re.search(r'href="(/governance/proposals/\d+/)"', listing).group(1)
    detail = client.get(proposal_url).content.decode()
    assert (f"For {shown(BIG, 'vOPEN')} · against {shown(NOISY, 'vOPEN')} · abstain {shown(0, 'vOPEN')}"
            in detail)
    assert f"<td>for</td><td>{shown(BIG, 'vOPEN')}</td>" in detail  # each ballot's weight
    assert f"<td>against</td><td>{shown(NOISY, 'vOPEN')}</td>" in detail
    assert "10.000000000000000007" not in visible_text(detail)


def test_the_voting_power_page_rounds_open_vopen_and_votes(governance, alice, link_wallet, client):
    wallet = governance.chain.wallets[0]
    link_wallet(alice, wallet)
    governance.holder(wallet, BIG)  # wrapped and delegated to itself
    governance.fund(wallet, NOISY)  # left as OPEN
    client.force_login(alice)
    page = client.get("/governance/delegate/").content.decode()
    assert f"<tr><th>OPEN</th><td>{shown(NOISY)}</td></tr>" in page
    assert f'<td data-testid="vopen">{shown(BIG, "vOPEN")}</td>' in page
    assert f'<td data-testid="votes">{shown(BIG, "vOPEN")}</td>' in page
    assert "1,234.567890500000000003" not in visible_text(page)


def test_stake_pages_round_the_requirement_and_the_stakes(governance, dev_signing, alice, charlie, link_wallet, client,
                                                          django_capture_on_commit_callbacks):
    from datanets import services as datanet_services

    datanet = datanet_services.datanet_create(owner=alice, name="Support intents", task_type="text-classification",
                                              label_set=["billing", "shipping"], visibility="public")
    wallet = governance.fund(governance.chain.wallets[2], BIG + 100 * OPEN)
    link_wallet(charlie, wallet)

    def post(user, url, data):
        client.force_login(user)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data)

    # The owner types the requirement in OPEN with all 18 decimals; the contributor stakes a noisy amount.
    assert post(alice, f"/governance/datanets/{datanet.slug}/stake/",
                {"minimum": "10.000000000000000007"}).status_code == 302
    assert post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": format_open(BIG, grouping=False),
                                                 "kind": "stake"}).status_code == 302
    assert post(charlie, "/governance/stakes/", {"datanet": datanet.slug, "amount": "0.000000000000000001",
                                                 "kind": "unstake"}).status_code == 302
    stakes_index()
    assert governance.staking.stake_of(wallet.address, datanet.pk).active == BIG - 1

    page = client.get("/governance/stakes/").content.decode()  # as charlie
    assert f"<td><code>{wallet.address}</code></td><td>{shown(BIG - 1)}</td><td>{shown(1)}</td>" in page
    assert "&lt; 0.000001 OPEN</data>" in page  # one base unit unstaking: tiny, never "0"

    client.force_login(alice)
    overview = client.get(f"/governance/datanets/{datanet.slug}/stake/").content.decode()
    assert f"Contributing needs {shown(NOISY)} staked on this Datanet" in overview
    assert f"<td><code>{wallet.address}</code></td><td>{shown(BIG - 1)}</td><td>{shown(1)}</td>" in overview
    assert f"reward pool so far: {shown(0)}." in overview
    assert "10.000000000000000007" not in visible_text(overview)
