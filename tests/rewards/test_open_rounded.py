"""The `|open_rounded` filter: OPEN amounts on the rewards pages rounded to 6 decimals for reading, with the
exact amount kept in the markup (`<data value>` and `title`), so nothing is lost; CSV exports and the API
stay exact."""

import csv
import io
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from django.template import Context, Template
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from rewards import ledger, services
from rewards.amounts import UINT256_MAX, format_open, format_open_rounded
from rewards.models import AccountKind
from rewards.templatetags.open_amounts import open_rounded

OPEN = 10**18
MODEL = "7e" * 32


def decimal_oracle(amount: int) -> str:
    """The same rule done another way: below the last place shown (0.000001 OPEN) but not zero is said so;
    anything else is rounded with Decimal arithmetic, with enough precision for any uint256."""
    if 0 < abs(amount) < OPEN // 10**6:
        return "< 0.000001" if amount > 0 else "> -0.000001"
    with localcontext() as context:
        context.prec = 200
        value = (Decimal(amount) / OPEN).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        whole, _, fraction = f"{abs(value):f}".partition(".")
        text = f"{int(whole):,}" + ("." + fraction.rstrip("0") if fraction.rstrip("0") else "")
        return ("-" if value < 0 else "") + text


@pytest.mark.parametrize(("amount", "shown"), [
    (0, "0"),
    (6 * OPEN + 4, "6"),  # the noise this filter exists for
    (OPEN // 20, "0.05"),
    (3 * OPEN // 2, "1.5"),  # trailing zeros trimmed
    (1_234_567_500_000_000_000, "1.234568"),  # half rounds up
    (1_234_567_499_999_999_999, "1.234567"),
    (999_999_500_000_000_000, "1"),  # carries into the whole part
    (10**12, "0.000001"),  # the smallest amount shown as a number
    (10**12 - 1, "< 0.000001"),  # tiny but not zero: never "0"
    (1, "< 0.000001"),
    (-1, "> -0.000001"),
    (-(6 * OPEN + 4), "-6"),
    (-1_500_000_000_000, "-0.000002"),
    (1_000_000 * OPEN + OPEN // 10, "1,000,000.1"),  # grouped
])
def test_amounts_are_rounded_for_reading(amount, shown):
    assert format_open_rounded(amount) == shown == decimal_oracle(amount)


def test_the_largest_amount_is_shown_whole_and_grouped():
    shown = format_open_rounded(UINT256_MAX)
    assert shown == decimal_oracle(UINT256_MAX) and shown.startswith(f"{UINT256_MAX // OPEN:,}.")
    assert format_open_rounded(-UINT256_MAX) == "-" + shown


@given(st.integers(min_value=-UINT256_MAX, max_value=UINT256_MAX))
def test_rounding_agrees_with_decimal_arithmetic(amount):
    assert format_open_rounded(amount) == decimal_oracle(amount)


def test_bad_decimals_are_refused():
    for decimals in (0, 19):
        with pytest.raises(ValueError, match="decimals"):
            format_open_rounded(OPEN, decimals=decimals)
    assert format_open_rounded(OPEN + 1, decimals=18) == "1.000000000000000001"


def test_the_filter_keeps_the_exact_amount_in_the_markup():
    assert str(open_rounded(6 * OPEN + 4)) == (
        '<data value="6.000000000000000004" title="6.000000000000000004 OPEN">6 OPEN</data>')
    assert str(open_rounded(str(1_000 * OPEN + 1))) == (  # a string of base units, as the API sends them
        '<data value="1000.000000000000000001" title="1,000.000000000000000001 OPEN">1,000 OPEN</data>')
    assert str(open_rounded(1)) == (
        '<data value="0.000000000000000001" title="0.000000000000000001 OPEN">&lt; 0.000001 OPEN</data>')
    assert str(open_rounded(-(OPEN // 2))) == '<data value="-0.5" title="-0.5 OPEN">-0.5 OPEN</data>'
    assert str(open_rounded(0)) == '<data value="0" title="0 OPEN">0 OPEN</data>'
    assert open_rounded(None) == open_rounded("") == "—"
    rendered = Template("{% load open_amounts %}{{ amount|open_rounded }}").render(Context({"amount": 10**12 - 1}))
    assert rendered == ('<data value="0.000000999999999999" title="0.000000999999999999 OPEN">&lt; 0.000001 OPEN'
                        '</data>')  # escaped once, not twice


@pytest.mark.django_db
def test_the_rewards_page_shows_rounded_amounts_with_the_exact_ones_kept(client, dora, alice, charlie, grant):
    grant(charlie, 50 * OPEN)
    services.fee_settle(inference_id="noisy-1", payer=charlie, model_owner=alice, fee=10 * OPEN + 7,
                        contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL, receipt_id="rc-noisy")
    services.fee_settle(inference_id="tiny-1", payer=charlie, model_owner=alice, fee=7,
                        contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL, receipt_id="rc-tiny")
    earned = ledger.balance(kind=AccountKind.EARNINGS, user=dora)
    assert format_open(earned) != format_open_rounded(earned)  # the case in point: 6.000000000000000008 or so
    client.force_login(dora)
    page = client.get("/rewards/").content.decode()
    assert (f'<span data-testid="earned"><data value="{format_open(earned, grouping=False)}" '
            f'title="{format_open(earned)} OPEN">{format_open_rounded(earned)} OPEN</data></span>') in page
    assert f">{format_open(earned)}" not in page  # the exact figure is in the markup, not in the text
    assert "&lt; 0.000001 OPEN</data>" in page  # the tiny share of the 7-base-unit fee
    # The CSV export and the API keep the exact amounts.
    response = client.get(reverse("rewards:earnings_csv"))
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert sorted(int(row["amount_base_units"]) for row in table) == sorted(
        int(item["amount"]) for item in client.get("/api/v1/rewards/earnings/").json()["results"])
    assert {row["amount_open"] for row in table} == {format_open(int(row["amount_base_units"])) for row in table}
    assert client.get("/api/v1/rewards/earnings/").json()["totals"]["earned"] == str(earned)
