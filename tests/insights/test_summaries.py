"""Summaries computed from real rows made through the apps' services: uploads and curator reviews, API
calls with keys, fees, an epoch closed on the in-process chain and a claim; the beat task's idempotence.

The clock is frozen (tests/insights/conftest.py); tests whose facts land on a day or a week take `calendar_day`
and run on every weekday and across month, year and ISO-week-53 boundaries (tests/conftest.py's CALENDAR_DAYS)."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from datanets import services as datanet_services
from datanets.models import Contribution
from insights import counters, selectors, services
from insights.catalog import DATANET_CHARTS, OVERVIEW_CHARTS
from insights.models import (
    ApiCallCount,
    CohortRetention,
    EpochSummary,
    MetricFact,
    RefreshState,
    ServingSample,
)
from insights.tasks import summaries_refresh_recent
from rewards import services as rewards_services

OPEN = 10**18
MODEL = "ab" * 32


def monday_of(day):
    return day - timedelta(days=day.weekday())


def upload(datanet, contributor, rows, capture):
    with capture(execute=True):
        contribution = datanet_services.contribution_create_from_rows(datanet=datanet, contributor=contributor,
                                                                      rows=rows)
    contribution.refresh_from_db()
    return contribution


@pytest.fixture
def tickets(alice, bob, charlie, django_capture_on_commit_callbacks):
    """Bob uploads 9 rows to alice's Datanet (6 good, 1 exact duplicate of an earlier row, 2 invalid); alice
    accepts 4 and rejects 2. Charlie uploads 3 good rows to a second Datanet."""
    labels = ["billing", "shipping"]
    tickets = datanet_services.datanet_create(owner=alice, name="Tickets", task_type="text-classification",
                                              label_set=labels)
    other = datanet_services.datanet_create(owner=alice, name="Other", task_type="text-classification",
                                            label_set=labels)
    first = upload(tickets, bob, [{"text": "refund my order please", "label": "billing"}],
                   django_capture_on_commit_callbacks)
    rows = [{"text": f"where is parcel number {n}", "label": "shipping"} for n in range(5)]
    rows += [{"text": "refund my order please", "label": "billing"},  # exact duplicate of the first upload
             {"text": "", "label": "billing"}, {"text": "what is this", "label": "nonsense"}]
    second = upload(tickets, bob, rows, django_capture_on_commit_callbacks)
    assert (first.rows_total, second.rows_total) == (1, 8)
    assert (second.rows_accepted, second.rows_rejected, second.rows_duplicate) == (5, 2, 1)
    records = list(tickets.records.order_by("pk").values_list("pk", flat=True))
    datanet_services.records_review(datanet=tickets, reviewer=alice, record_ids=records[:4], decision="accept")
    datanet_services.records_review(datanet=tickets, reviewer=alice, record_ids=records[4:], decision="reject",
                                    reason="off topic")
    upload(other, charlie, [{"text": f"charged twice {n}", "label": "billing"} for n in range(3)],
           django_capture_on_commit_callbacks)
    return tickets, other


def test_contribution_velocity_from_uploads_and_reviews(calendar_day, tickets, bob, charlie, fact):
    tickets, other = tickets
    report = services.summaries_refresh()
    day = calendar_day
    assert report.facts > 0
    assert fact("contrib.rows_submitted", day) == 12
    assert fact("contrib.rows_submitted", day, "datanet", tickets.pk) == 9
    assert fact("contrib.rows_submitted", day, "datanet", other.pk) == 3
    assert fact("contrib.contributions", day, "datanet", tickets.pk) == 2
    assert fact("contrib.rows_duplicate", day, "datanet", tickets.pk) == 1
    assert fact("contrib.rows_invalid", day, "datanet", tickets.pk) == 2
    assert fact("contrib.rows_accepted", day, "datanet", tickets.pk) == 4
    assert fact("contrib.rows_rejected", day, "datanet", tickets.pk) == 2 + 2  # invalid + rejected in review
    assert fact("contrib.rows_accepted", day, "datanet", other.pk) is None  # nothing reviewed there: no row
    assert fact("contrib.new_contributors", day) == 2
    assert fact("contrib.new_contributors", day, "datanet", tickets.pk) == 1
    assert fact("contrib.active_contributors", day) == 2
    monday = monday_of(day)
    assert fact("contrib.active_contributors", monday, grain="week") == 2

    # The drill-down reads them back, with the acceptance rate derived from the sums: 4 / (4 + 4).
    window = selectors.window_parse(range_value="7d")
    data = selectors.dashboard(charts=DATANET_CHARTS, window=window, scope_kind="datanet", scope_id=str(tickets.pk))
    charts = {c["id"]: c for c in data["charts"]}
    velocity = {s["key"]: s for s in charts["contribution_velocity"]["series"]}
    assert velocity["rows_submitted"]["values"][-1] == 9 and velocity["rows_submitted"]["total"] == 9
    assert charts["acceptance_rate"]["series"][0]["values"][-1] == pytest.approx(50.0)
    assert charts["acceptance_rate"]["series"][0]["values"][0] is None  # nothing decided that day: no rate
    assert data["has_data"] and not data["synthetic"]

    # Contributor cohorts: both first contributed this week, both active in it.
    cohort = CohortRetention.objects.get(kind="contributors", weeks_after=0, synthetic=False)
    assert (cohort.cohort_week, cohort.cohort_size, cohort.active) == (monday, 2, 2)


def test_refresh_is_idempotent_and_keeps_days_outside_its_window(calendar_day, tickets, bob, fact, facts_snapshot,
                                                                 django_capture_on_commit_callbacks):
    tickets, _ = tickets
    services.summaries_refresh()
    first = facts_snapshot()
    services.summaries_refresh()
    assert facts_snapshot() == first
    summaries_refresh_recent.delay()  # the beat task (eager in tests), twice
    summaries_refresh_recent.delay()
    assert facts_snapshot() == first

    # An upload ten days ago: a full rebuild puts it on its day; the recent-days task leaves that day alone.
    old_day = calendar_day - timedelta(days=10)
    old = upload(tickets, bob, [{"text": "an older question", "label": "billing"}], django_capture_on_commit_callbacks)
    Contribution.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    services.summaries_refresh(since=None)
    assert fact("contrib.rows_submitted", old_day, "datanet", tickets.pk) == 1
    assert fact("contrib.rows_submitted", calendar_day, "datanet", tickets.pk) == 9
    report = summaries_refresh_recent.delay().get()
    assert report["since"] > old_day.isoformat()
    assert fact("contrib.rows_submitted", old_day, "datanet", tickets.pk) == 1
    state = RefreshState.objects.get(pk=1)
    assert state.last_finished_at is not None and state.last_facts > 0


def test_api_calls_counted_by_scope_with_keys_and_cohorts(db, calendar_day, alice, bob, key_client, api_key_for,
                                                           fact):
    reader = key_client(alice, "read")
    for _ in range(3):
        assert reader.get("/api/v1/me/").status_code == 200
    writer = key_client(bob, "read", "contribute")
    assert writer.post("/api/v1/datanets/", {}, format="json").status_code == 400  # authorised, then invalid
    assert writer.get("/api/v1/me/").status_code == 200
    refused = key_client(bob, "read")
    assert refused.post("/api/v1/datanets/", {}, format="json").status_code == 403  # wrong scope: not counted
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/insights/").status_code == 200  # anonymous: no key, not counted

    services.summaries_refresh()
    day, monday = calendar_day, monday_of(calendar_day)
    assert fact("dev.api_calls", day, "api_scope", "read") == 4
    assert fact("dev.api_calls", day, "api_scope", "contribute") == 1
    assert fact("dev.api_calls", day) == 5
    assert fact("dev.active_api_keys", day) == 2
    assert fact("dev.active_api_users", day) == 2
    assert fact("dev.api_keys_created", day) == 3
    assert fact("dev.active_api_keys", monday, grain="week") == 2
    assert fact("dev.active_api_users", monday, grain="week") == 2
    cohort = CohortRetention.objects.get(kind="api_users", weeks_after=0)
    assert (cohort.cohort_week, cohort.cohort_size, cohort.active) == (monday, 2, 2)


def test_api_call_counters_are_buffered_then_flushed(db, alice, api_key_for, settings):
    settings.INSIGHTS_API_CALLS_FLUSH_S = 3600
    key, _ = api_key_for(alice, "read")
    counters._last_flush = time.monotonic()
    for _ in range(5):
        counters.api_call_record(api_key=key, scope="read")
    assert not ApiCallCount.objects.exists()  # held in memory: no write per call
    assert counters.api_calls_flush() == 5
    counters.api_call_record(api_key=key, scope="read")
    assert counters.api_calls_flush() == 1
    row = ApiCallCount.objects.get()
    assert (row.calls, row.scope, row.user_id, row.api_key_id) == (6, "read", alice.pk, key.pk)
    assert counters.api_calls_flush() == 0


def test_fees_earnings_claims_and_epochs(calendar_day, chain, alice, bob, charlie, staff, link_wallet, fact):
    """Charlie pays three answers of bob's model; alice (wallet linked) and staff contributed the rows."""
    rewards_services.credit_grant(actor=None, user=charlie, amount=100 * OPEN, reason="test credit")
    link_wallet(alice, chain.wallets[0])
    for n in range(3):
        rewards_services.fee_settle(inference_id=f"inf-{n}", payer=charlie, model_owner=bob, fee=10 * OPEN,
                                    contributor_shares={alice.pk: 750_000, staff.pk: 250_000},
                                    model_version_hash=MODEL, receipt_id=f"r{n}")
    epoch = rewards_services.epoch_close()
    assert epoch is not None and epoch.state == "closed"
    from rewards.selectors import claims_for

    [claim] = claims_for(user=alice)
    chain.distributor.claim(claim["address"], claim["cumulative_amount"],
                            [bytes.fromhex(p[2:]) for p in claim["proof"]], sender=chain.wallets[0])
    assert rewards_services.claims_index() == 1

    services.summaries_refresh()
    day = calendar_day
    policy = rewards_services.fee_policy_current()
    assert fact("rewards.settlements", day) == 3
    assert fact("rewards.fees", day) == pytest.approx(30.0)
    assert fact("rewards.fees", day, "model", MODEL) == pytest.approx(30.0)
    assert fact("rewards.to_contributors", day) == pytest.approx(30.0 * policy.contributors_bps / 10_000)
    assert fact("rewards.to_owners", day) == pytest.approx(30.0 * policy.owner_bps / 10_000)
    assert fact("rewards.to_protocol", day) == pytest.approx(30.0 * policy.protocol_bps / 10_000)
    contributors_total = 30.0 * policy.contributors_bps / 10_000
    assert fact("rewards.earned", day, "user", alice.pk) == pytest.approx(contributors_total * 0.75)
    assert fact("rewards.earned", day, "user", staff.pk) == pytest.approx(contributors_total * 0.25)
    assert fact("rewards.claimed", day) == pytest.approx(claim["cumulative_amount"] / OPEN)

    summary = EpochSummary.objects.get(synthetic=False)
    assert summary.number == epoch.number and summary.state == "closed"
    assert summary.accrued == pytest.approx(int(epoch.increase) / OPEN)
    assert summary.claimed == pytest.approx(claim["cumulative_amount"] / OPEN)
    assert summary.recipients == epoch.allocations.count()

    window = selectors.window_parse(range_value="30d")
    earners = selectors.top_earners(window=window)
    assert [(e["user_id"], e["name"]) for e in earners] == [(alice.pk, "Alice"), (staff.pk, "Staff")]
    data = selectors.dashboard(charts=OVERVIEW_CHARTS, window=window)
    share = next(c for c in data["charts"] if c["id"] == "contributor_share")["series"][0]
    assert share["values"][-1] == pytest.approx(100 * policy.contributors_bps / 10_000)


def test_adapter_cache_hit_rate_from_model_server_samples(db, calendar_day, fact):
    """Cumulative counters sampled at each refresh become daily increases; a restart (counters drop) counts
    from zero again."""
    def stats(hits, misses):
        return {"bases": {"minilm": {"cache": {"device": {"hits": hits, "misses": misses},
                                               "host": {"hits": 0, "misses": misses}}}}}

    for hits, misses in ((10, 5), (40, 10), (3, 1), (9, 2)):  # the third sample follows a restart
        assert services.serving_sample_take(stats(hits, misses)) == 1
    assert services.serving_sample_take({}) == 0  # the server did not answer
    assert ServingSample.objects.count() == 4
    services.summaries_refresh(sample_serving=False)
    day = calendar_day
    assert fact("serving.cache_hits", day) == (40 - 10) + 3 + (9 - 3)
    assert fact("serving.cache_misses", day) == (10 - 5) + 1 + (2 - 1)
    assert fact("serving.cache_hits", day, "base", "minilm") == 39
    window = selectors.window_parse(range_value="7d")
    data = selectors.dashboard(charts=OVERVIEW_CHARTS, window=window)
    rate = next(c for c in data["charts"] if c["id"] == "cache_hit_rate")["series"][0]
    assert rate["values"][-1] == pytest.approx(100 * 39 / (39 + 7))


def test_refresh_with_nothing_recorded_writes_nothing(db):
    report = services.summaries_refresh()
    assert (report.facts, report.cohorts, report.epochs) == (0, 0, 0)
    assert not MetricFact.objects.exists()
