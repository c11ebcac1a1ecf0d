"""Issue #22, rewards page comforts: the earnings and the receipts are paginated lists, models are shown by
name, every figure carries its unit (OPEN), and earnings over time are drawn as the insights dashboards draw
(the vendored Chart.js through static/js/insights.js), with a table of the exact amounts beside the chart.

The chart buckets by UTC day, so the clock is frozen (tests/conftest.py's `frozen_clock`) and the chart's tests
run on every weekday and across month, year and leap-day boundaries (`calendar_day`)."""

import re
from datetime import timedelta

import pytest
from browser_support import assert_accessible, login
from django.utils import timezone
from playwright.sync_api import expect

from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from rewards import ledger, selectors, services
from rewards.models import Settlement, SettlementShare

OPEN = 10**18
MODEL = "7e" * 32
FEE = OPEN // 10  # 0.1 OPEN per answer

pytestmark = pytest.mark.usefixtures("frozen_clock")  # before any fixture writes a row


@pytest.fixture
def model(db, alice):
    base = BaseModel.objects.create(name="Tiny", slug="tiny", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=alice, name="intents", base_model=base, task="text-classification")
    return ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Support intents", slug="support-intents", version_hash=MODEL,
        task="text-classification", storage_prefix="models/" + MODEL, manifest={}, price_per_inference=FEE)


@pytest.fixture
def answers(model, dora, alice, charlie, grant, django_capture_on_commit_callbacks):
    """30 answers Charlie paid for that used Dora's rows, over the last 30 days (one a day, the oldest
    first), and 3 answers Dora paid for herself, today."""
    grant(charlie, 10 * OPEN)
    grant(dora, OPEN)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(30):
            services.fee_record(inference_id=f"paid-by-charlie-{i:02d}", payer=charlie, model_owner=alice, fee=FEE,
                                contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL,
                                receipt_id=f"rc-{i:02d}", contributor_rows={dora.pk: [f"row-{i}"]})
        for i in range(3):
            services.fee_record(inference_id=f"paid-by-dora-{i}", payer=dora, model_owner=alice, fee=FEE,
                                contributor_shares={}, model_version_hash=MODEL, receipt_id=f"rc-dora-{i}")
    services.fees_settle_pending()
    for i in range(30):  # spread over the days (settlements are append-only; this is the test's clock)
        Settlement.objects.filter(inference_id=f"paid-by-charlie-{i:02d}").update(created_at=now - timedelta(days=29 - i))
    return now


def test_the_chart_has_a_bar_for_every_day_and_the_exact_amounts(calendar_day, answers, dora):
    chart = selectors.earnings_chart(user=dora)
    assert not chart["empty"] and len(chart["series"]) == 30  # 29 days ago to today, every day
    assert [day for day, _ in chart["series"]] == [calendar_day - timedelta(days=29 - n) for n in range(30)]
    per_answer = ledger.sum_amounts(SettlementShare.objects.filter(user=dora)) // 30
    assert [amount for _, amount in chart["series"]] == [per_answer] * 30
    assert chart["rows"][0]["amount_open"] == ledger.format_open(per_answer)
    assert chart["chart_json"]["unit"] == "OPEN" and chart["chart_json"]["kind"] == "bar"
    assert chart["chart_json"]["series"][0]["values"][0] == pytest.approx(per_answer / OPEN)
    assert f"{ledger.format_open(30 * per_answer)} OPEN in total" in chart["summary"]
    # A shorter window starts at its first day; a user who earned nothing has an empty chart.
    assert len(selectors.earnings_chart(user=dora, days=7)["series"]) == 7
    assert selectors.earnings_chart(user=dora, today=answers.date() + timedelta(days=400))["empty"]


def test_the_chart_fills_days_without_earnings_with_zero(calendar_day, answers, dora):
    Settlement.objects.filter(inference_id="paid-by-charlie-27").update(
        created_at=answers - timedelta(days=100))  # out of the 90-day window: its day shows 0
    series = dict(selectors.earnings_chart(user=dora)["series"])
    assert series[calendar_day - timedelta(days=2)] == 0 and len(series) == 30
    assert min(series) == calendar_day - timedelta(days=29) and max(series) == calendar_day


def test_lists_are_paginated_and_name_models(client, answers, dora):
    client.force_login(dora)
    first = client.get("/rewards/")
    earnings, receipts = first.context["earnings_page"], first.context["receipts_page"]
    assert earnings.paginator.count == 30 and len(earnings) == 25 and receipts.paginator.count == 3
    assert earnings[0]["inference_id"] == "paid-by-charlie-29"  # newest first
    assert earnings[0]["model_name"] == "Support intents" and earnings[0]["receipt_url"] == "/attribution/receipts/rc-29/"
    second = client.get("/rewards/?earnings_page=2&receipts_page=1").context["earnings_page"]
    assert [item["inference_id"] for item in second] == [f"paid-by-charlie-{i:02d}" for i in range(4, -1, -1)]
    for bad in ("abc", "-3", "999"):  # the nearest real page, never an error
        assert client.get(f"/rewards/?earnings_page={bad}").status_code == 200
    html = first.content.decode()
    assert ">Support intents</a>" in html and MODEL[:12] not in html


def test_an_unregistered_model_is_said_so(db, dora):
    items = selectors.with_model_names([{"model_version_hash": "ab" * 32}])
    assert (items[0]["model_name"], items[0]["model_url"]) == ("", "")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_rewards_page_paginates_names_models_units_every_figure_and_draws_the_chart(live_server, page, answers,
                                                                                   dora):
    login(page, live_server, dora)
    page.goto(f"{live_server.url}/rewards/")
    assert_accessible(page)

    # Every figure has its unit.
    for testid in ("earned", "accruing", "pending", "paid", "credit"):
        expect(page.get_by_test_id(testid).locator("xpath=..")).to_contain_text(re.compile(r"^[\d.,]+ OPEN"))
    earnings = page.locator("#earnings tbody tr")
    expect(earnings).to_have_count(25)
    for cell in page.locator("#earnings tbody td:nth-child(5)").all_inner_texts():
        assert re.fullmatch(r"[\d.,]+ OPEN", cell), cell
    for cell in page.locator("#receipts-list tbody td:nth-child(4)").all_inner_texts():
        assert cell == "0.1 OPEN", cell

    # Models by name, linked to their page; receipts linked.
    newest = page.locator("#earnings tbody tr").first
    expect(newest).to_contain_text("paid-by-charlie-29")
    expect(newest.get_by_role("link", name="Support intents")).to_have_attribute("href", "/models/support-intents/")
    expect(newest.get_by_role("link", name="Receipt")).to_have_attribute("href", "/attribution/receipts/rc-29/")
    expect(page.locator("#by-model ~ table").first).to_contain_text("Support intents")
    expect(page.get_by_role("heading", name="Receipts of answers you paid for (3)")).to_be_visible()

    # The chart is drawn (Chart.js from static/vendor) and its table has the exact amounts.
    expect(page.locator("canvas[data-chart='earnings-chart-data']")).to_have_attribute("data-drawn", "true")
    page.get_by_text("Table: OPEN earned per day").click()
    expect(page.locator(".chart-table tbody tr")).to_have_count(30)
    expect(page.locator(".chart-table tbody tr").first).to_contain_text("OPEN")
    assert_accessible(page)

    # The next page of earnings, the receipts page kept.
    page.get_by_role("navigation", name="Earnings pages").get_by_role("link", name="Older").click()
    expect(page).to_have_url(re.compile(r"earnings_page=2&receipts_page=1#per-inference$"))
    expect(earnings).to_have_count(5)
    expect(page.locator("#earnings tbody tr").last).to_contain_text("paid-by-charlie-00")
    expect(page.get_by_role("navigation", name="Earnings pages")).to_contain_text("Page 2 of 2")
    assert_accessible(page)
