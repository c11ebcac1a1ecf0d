"""Day and week buckets under a frozen clock, on every weekday and across month, year and leap-day boundaries.

The dashboards bucket facts by UTC day and by ISO week (Monday first); a test that reads the real clock passes
or fails with the day it runs on (a Monday once broke the generated-history test: the current week then holds
only today, which is measured). Here the clock is frozen at noon UTC on each of tests/conftest.py's
CALENDAR_DAYS (`calendar_day`; every weekday, month, year, ISO-week-53 and leap-day boundaries), and the same
checks run on each: generated history ends yesterday, today is measured, every past week holds generated days,
the current week does too unless today is its Monday, weekly buckets and cohorts start on Mondays, and the
refresh's weekly facts land on the Monday of today's week (across a month or year boundary too)."""

from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from datanets import services as datanet_services
from insights import services
from insights.models import CohortRetention, MetricFact, ServingSample
from lineage.demo.history import history_generate

HISTORY_DAYS = 70  # ten weeks: every window below crosses at least one month boundary


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def test_the_frozen_clock_reaches_what_the_buckets_read(db, calendar_day, frozen_clock, alice):
    """What the checks below stand on: `timezone.now` as services, `auto_now_add` and `localdate` read it, and
    model defaults that hold `timezone.now` itself (ServingSample.taken_at, which the refresh buckets by day),
    at noon UTC on the day, each reading a microsecond after the last (rows keep their order)."""
    noon = datetime.combine(calendar_day, time(12), tzinfo=UTC)
    first, second = ServingSample.objects.create(base="minilm"), ServingSample.objects.create(base="minilm")
    assert noon < first.taken_at < second.taken_at < noon + timedelta(seconds=1)
    datanet = datanet_services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                              label_set=["billing", "shipping"])
    assert noon < datanet.created_at < noon + timedelta(seconds=1)  # auto_now_add
    assert timezone.localdate() == frozen_clock.today == calendar_day


def test_day_and_week_buckets_on_every_weekday_and_boundary(db, calendar_day, alice, bob,
                                                            django_capture_on_commit_callbacks):
    today, monday = calendar_day, monday_of(calendar_day)
    datanet = datanet_services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                              label_set=["billing", "shipping"])
    with django_capture_on_commit_callbacks(execute=True):
        datanet_services.contribution_create_from_rows(datanet=datanet, contributor=bob,
                                                       rows=[{"text": "refund please", "label": "billing"}])
    report = history_generate(days=HISTORY_DAYS, seed=7)
    assert (report.first_day, report.last_day) == (today - timedelta(days=HISTORY_DAYS), today - timedelta(days=1))
    services.summaries_refresh(since=None)
    assert MetricFact.objects.filter(synthetic=False, day=today, grain="day").exists()
    assert not MetricFact.objects.filter(synthetic=False, day__lt=monday).exists()
    anon = APIClient()

    # Days: the last bucket is today, measured (bob's one row); yesterday is generated.
    daily = anon.get("/api/v1/insights/?range=14d&bucket=day").json()
    velocity = daily["charts"][0]
    assert velocity["labels"] == [(today - timedelta(days=13 - n)).isoformat() for n in range(14)]
    assert velocity["synthetic"][-1] is False and velocity["synthetic"][-2] is True
    assert velocity["series"][0]["values"][-1] == 1
    assert all(velocity["synthetic"][:-1])

    # Weeks: Monday labels seven days apart ending with this week's Monday; every earlier week holds generated
    # days, and this one too unless today is its Monday (then it holds only today, which is measured).
    weekly = anon.get(f"/api/v1/insights/?range={HISTORY_DAYS}d&bucket=week").json()
    assert weekly["window"]["end"] == today.isoformat() and weekly["window"]["bucket"] == "week"
    labels = [date.fromisoformat(label) for label in weekly["charts"][0]["labels"]]
    assert labels[-1] == monday and all(label.weekday() == 0 for label in labels)
    assert [b - a for a, b in zip(labels, labels[1:], strict=False)] == [timedelta(days=7)] * (len(labels) - 1)
    flags = weekly["charts"][0]["synthetic"]
    assert all(flags[1:-1]) and flags[-1] is (today != monday)
    if today == monday:
        assert weekly["charts"][0]["series"][0]["values"][-1] == 1  # only today, measured

    # The refresh's weekly facts and cohorts sit on the Monday of today's week, whichever month or year it is in.
    week_fact = MetricFact.objects.get(metric="contrib.active_contributors", grain="week", scope_kind="global",
                                       synthetic=False)
    assert (week_fact.day, week_fact.value) == (monday, 1)
    cohort = CohortRetention.objects.get(kind="contributors", weeks_after=0, synthetic=False)
    assert (cohort.cohort_week, cohort.cohort_size, cohort.active) == (monday, 1, 1)
    drill = anon.get(f"/api/v1/insights/datanets/{datanet.slug}/?range={HISTORY_DAYS}d&bucket=week").json()
    contributors = next(chart for chart in drill["charts"] if chart["id"] == "contributors")
    active = next(series for series in contributors["series"] if series["key"] == "active_contributors")
    assert active["values"][-1] == 1  # this week: measured (bob), not generated
