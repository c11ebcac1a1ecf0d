"""Dashboards, page and API: with no data at all, with a year of generated history, with real data beside
synthetic data, private Datanets, bad parameters, the OpenAPI schema and the operator metrics.

The clock is frozen (tests/insights/conftest.py); tests that bucket by day or week take `calendar_day` and run
on every weekday and across month, year and ISO-week-53 boundaries (tests/conftest.py's CALENDAR_DAYS)."""

from datetime import date, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from datanets import services as datanet_services
from datanets.models import Contribution
from insights import selectors, services
from insights.catalog import OVERVIEW_CHARTS
from insights.models import CohortRetention, EpochSummary, MetricFact
from lineage.demo.history import history_generate

CHART_IDS = [c.id for c in OVERVIEW_CHARTS]


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def datanet(alice):
    return datanet_services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                           label_set=["billing", "shipping"])


def test_empty_dashboards_say_no_data_yet(db, client, anon, datanet):
    page = client.get("/insights/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "No data yet" in html and "<canvas" not in html
    for chart_id in CHART_IDS:
        assert f'data-empty-chart="{chart_id}"' in html
    assert "No cohorts yet." in html and "No earnings yet." in html and "synthetic history" not in html

    body = anon.get("/api/v1/insights/").json()
    assert body["has_data"] is False and body["synthetic"] is False and body["refreshed_at"] is None
    assert [c["id"] for c in body["charts"]] == CHART_IDS
    assert all(c["empty"] for c in body["charts"])
    velocity = body["charts"][0]
    assert len(velocity["labels"]) == 90 and set(velocity["series"][0]["values"]) == {0}
    assert "no data yet" in velocity["summary"]
    assert body["datanets"] == [{"slug": datanet.slug, "name": "Support tickets", "total": 0.0,
                                 "url": f"/insights/datanets/{datanet.slug}/"}]
    retention = anon.get("/api/v1/insights/retention/").json()
    assert retention["contributors"]["empty"] and retention["api_users"]["cohorts"] == []
    assert anon.get("/api/v1/insights/epochs/").json() == {"results": []}
    assert anon.get("/api/v1/insights/top-earners/").json()["results"] == []

    drill = client.get(f"/insights/datanets/{datanet.slug}/")
    assert drill.status_code == 200 and "No data yet" in drill.content.decode()
    assert anon.get(f"/api/v1/insights/datanets/{datanet.slug}/").json()["has_data"] is False


def test_a_year_of_generated_history_renders_marked_synthetic(db, calendar_day, client, anon, datanet, bob,
                                                              django_capture_on_commit_callbacks):
    today, monday = calendar_day, calendar_day - timedelta(days=calendar_day.weekday())
    with django_capture_on_commit_callbacks(execute=True):
        datanet_services.contribution_create_from_rows(datanet=datanet, contributor=bob,
                                                       rows=[{"text": "refund please", "label": "billing"}])
    report = history_generate(days=365, seed=7)
    assert report.last_day == today - timedelta(days=1)
    assert report.first_day == report.last_day - timedelta(days=364)
    assert report.facts > 10_000 and report.epochs > 40 and report.cohorts > 100
    assert not MetricFact.objects.filter(synthetic=False).exists()
    assert MetricFact.objects.filter(synthetic=True, scope_kind="datanet", scope_id=str(datanet.pk)).exists()
    assert MetricFact.objects.filter(synthetic=True, scope_kind="user", scope_id=str(bob.pk)).exists()
    before = MetricFact.objects.count()

    # Same seed, same history; a real refresh never touches synthetic rows.
    history_generate(days=365, seed=7)
    assert MetricFact.objects.count() == before
    services.summaries_refresh(since=None)
    assert MetricFact.objects.filter(synthetic=True).count() == before
    assert MetricFact.objects.filter(synthetic=False).exists()  # bob's upload today

    for query in ("", "?range=365d", "?range=all&bucket=day", "?range=30d&bucket=week", "?range=12w"):
        page = client.get(f"/insights/{query}")
        assert page.status_code == 200, query
        html = page.content.decode()
        assert html.count("<canvas") == len(CHART_IDS) + 2  # + retention curve and epochs
        assert "synthetic history" in html and "(syn.)" in html
    year = anon.get("/api/v1/insights/?range=365d").json()
    assert year["has_data"] and year["synthetic"] and year["window"]["bucket"] == "week"
    velocity = year["charts"][0]
    # 365 days back to the Monday of their first week: 52 earlier weeks (364 days back is the same weekday)
    # and this one, on Mondays seven days apart, the last this week's.
    labels = [date.fromisoformat(label) for label in velocity["labels"]]
    assert labels == [monday - timedelta(weeks=52 - n) for n in range(53)]
    assert velocity["series"][0]["total"] > 100_000
    # Every past week holds generated days; the current one does too unless today is its first day (a
    # Monday), when it holds only today, which is measured.
    assert all(velocity["synthetic"][1:-1])
    assert velocity["synthetic"][-1] is (today != monday)
    daily = anon.get("/api/v1/insights/?range=365d&bucket=day").json()
    assert daily["charts"][0]["labels"] == [(today - timedelta(days=364 - n)).isoformat() for n in range(365)]
    assert daily["charts"][0]["synthetic"][-1] is False and daily["charts"][0]["synthetic"][-2] is True  # today: real
    assert daily["charts"][0]["series"][0]["values"][-1] == 1  # bob's one row
    drill = anon.get(f"/api/v1/insights/datanets/{datanet.slug}/?range=180d").json()
    assert drill["has_data"] is True and drill["window"]["bucket"] == "week"
    contributors = next(c for c in drill["charts"] if c["id"] == "contributors")
    active = next(s for s in contributors["series"] if s["key"] == "active_contributors")
    assert None not in active["values"] and active["values"][-1] == 1  # this week: measured (bob), not generated
    assert len(anon.get("/api/v1/insights/epochs/").json()["results"]) == report.epochs
    earners = anon.get("/api/v1/insights/top-earners/?range=365d").json()["results"]
    assert earners[0]["synthetic"] is True and any(e["name"] == "Bob" for e in earners)
    retention = anon.get("/api/v1/insights/retention/").json()["contributors"]
    assert len(retention["cohorts"]) == 12 and retention["curve"][0] == 100.0

    # Excluding synthetic history leaves only what was measured.
    real = anon.get("/api/v1/insights/?range=365d&synthetic=exclude").json()
    assert real["synthetic"] is False
    assert real["charts"][0]["series"][0]["total"] == 1
    assert "synthetic history" not in client.get("/insights/?synthetic=exclude").content.decode()


def test_real_facts_replace_synthetic_ones_for_the_same_day(db, calendar_day, anon, datanet, bob,
                                                            django_capture_on_commit_callbacks):
    history_generate(days=10, seed=1)
    yesterday = calendar_day - timedelta(days=1)  # in the month or the year before, on their first days
    synthetic = MetricFact.objects.get(day=yesterday, metric="contrib.rows_submitted", scope_kind="global",
                                       synthetic=True).value
    with django_capture_on_commit_callbacks(execute=True):
        contribution = datanet_services.contribution_create_from_rows(
            datanet=datanet, contributor=bob, rows=[{"text": "late parcel", "label": "shipping"},
                                                    {"text": "double charge", "label": "billing"}])
    Contribution.objects.filter(pk=contribution.pk).update(created_at=timezone.now() - timedelta(days=1))
    services.summaries_refresh(since=None)
    body = anon.get("/api/v1/insights/?range=7d&bucket=day").json()
    velocity = body["charts"][0]
    position = velocity["labels"].index(yesterday.isoformat())
    assert synthetic != 2
    assert velocity["series"][0]["values"][position] == 2  # the measured day, not the generated one
    assert velocity["synthetic"][position] is False and velocity["synthetic"][position - 1] is True
    # Both rows are kept: excluding synthetic history and regenerating it are independent of the real facts.
    assert MetricFact.objects.filter(day=yesterday, metric="contrib.rows_submitted", scope_kind="global").count() == 2


def test_private_datanets_stay_private_in_drill_downs(db, client, anon, alice, charlie):
    private = datanet_services.datanet_create(owner=alice, name="Secret", task_type="text-classification",
                                              label_set=["a", "b"], visibility="private")
    assert anon.get(f"/api/v1/insights/datanets/{private.slug}/").status_code == 404
    assert client.get(f"/insights/datanets/{private.slug}/").status_code == 404
    assert all(d["slug"] != private.slug for d in anon.get("/api/v1/insights/").json()["datanets"])
    client.force_login(alice)
    assert client.get(f"/insights/datanets/{private.slug}/").status_code == 200
    assert private.slug in client.get("/insights/").content.decode()
    client.force_login(charlie)
    assert client.get(f"/insights/datanets/{private.slug}/").status_code == 404
    assert anon.get("/api/v1/insights/models/no-such-model/").json()["code"] == "not_found"


@pytest.mark.parametrize("value", ["abc", "0d", "-5d", "7x", "3661d", "9999999d", "all;drop", "1y", "523w"])
def test_bad_range_is_a_clear_400(db, anon, client, value):
    response = anon.get("/api/v1/insights/", {"range": value})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_range" and list(body["fields"]) == ["range"]
    assert body["detail"] == body["fields"]["range"][0] and "range" in body["detail"]
    for path in ("/api/v1/insights/top-earners/", "/api/v1/insights/datanets/anything/",
                 "/api/v1/insights/models/anything/"):
        assert anon.get(path, {"range": value}).status_code in (400, 404)
    page = client.get("/insights/", {"range": value})
    assert page.status_code == 400
    assert body["detail"] in page.content.decode().replace("&#x27;", "'")


def test_bad_bucket_and_synthetic_parameters(db, anon, client):
    bucket = anon.get("/api/v1/insights/", {"bucket": "month"}).json()
    assert bucket["code"] == "invalid_range" and "day, week" in bucket["fields"]["bucket"][0]
    synthetic = anon.get("/api/v1/insights/retention/", {"synthetic": "maybe"})
    assert synthetic.status_code == 400 and synthetic.json()["code"] == "invalid_parameter"
    assert list(synthetic.json()["fields"]) == ["synthetic"]
    assert client.get("/insights/", {"bucket": "hour"}).status_code == 400
    assert client.get("/insights/", {"synthetic": "perhaps"}).status_code == 400
    # Empty values mean the defaults; a range in weeks and an upper-case bucket are accepted.
    ok = anon.get("/api/v1/insights/", {"range": "", "bucket": ""}).json()
    assert ok["window"]["range"] == "90d" and ok["window"]["bucket"] == "day"
    assert anon.get("/api/v1/insights/", {"range": "12w", "bucket": "WEEK"}).json()["window"]["bucket"] == "week"


def test_window_parse_aligns_weeks_and_defaults_by_length():
    wednesday = date(2026, 11, 25)
    assert selectors.window_parse(range_value="7d", today=wednesday).start == date(2026, 11, 19)
    year = selectors.window_parse(range_value="365d", today=wednesday)
    assert year.bucket == "week" and year.start.weekday() == 0 and year.buckets()[-1] == date(2026, 11, 23)
    with pytest.raises(selectors.InvalidWindow) as bad:
        selectors.window_parse(range_value="5000d", today=wednesday)
    assert bad.value.field == "range"


def test_window_buckets_on_every_weekday_and_boundary(calendar_day):
    """Without `today`, a window ends on the (frozen) clock's UTC day; day buckets are every day back to its
    start, week buckets the Mondays from the one on or before its start to this week's, across a month's or a
    year's end (also an ISO week 53) and a leap day."""
    today, monday = calendar_day, calendar_day - timedelta(days=calendar_day.weekday())
    days = selectors.window_parse(range_value="14d")
    assert (days.bucket, days.start, days.end, days.days) == ("day", today - timedelta(days=13), today, 14)
    assert days.buckets() == [today - timedelta(days=13 - n) for n in range(14)]
    assert [days.bucket_of(day) for day in days.buckets()] == days.buckets()
    weeks = selectors.window_parse(range_value="5w", bucket="week")
    # Its first day, 34 days back, is the weekday after today's: a Monday (four weeks back) only on Sundays.
    first_monday = monday - timedelta(weeks=4 if today.weekday() == 6 else 5)
    assert (weeks.start, weeks.end) == (first_monday, today)
    assert weeks.buckets() == [first_monday + timedelta(weeks=n) for n in range((monday - first_monday).days // 7 + 1)]
    assert {weeks.bucket_of(today - timedelta(days=n)) for n in range(today.weekday() + 1)} == {monday}
    assert weeks.bucket_of(monday - timedelta(days=1)) == monday - timedelta(weeks=1)


def test_htmx_request_gets_only_the_dashboard_fragment(db, client):
    history_generate(days=30, seed=3)
    fragment = client.get("/insights/", {"range": "30d"}, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="dashboard"') and "<html" not in fragment
    assert fragment.count("<canvas") == len(CHART_IDS) + 2


def test_insights_api_is_in_the_openapi_schema(db, anon):
    schema = anon.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/insights/", "/api/v1/insights/datanets/{slug}/", "/api/v1/insights/models/{slug}/",
                 "/api/v1/insights/retention/", "/api/v1/insights/epochs/", "/api/v1/insights/top-earners/"):
        assert path in schema["paths"], path
    overview = schema["paths"]["/api/v1/insights/"]["get"]
    assert {p["name"] for p in overview["parameters"]} >= {"range", "bucket", "synthetic"}
    assert "400" in overview["responses"] and "InsightsError" in str(overview["responses"]["400"])


def test_nav_dashboard_link_points_at_insights(db, client):
    html = client.get("/insights/").content.decode()
    assert '<a href="/insights/" aria-current="page">Dashboard</a>' in html
    assert "vendor/chartjs/chart.umd.min.js" in html and "js/insights.js" in html


def test_operator_metrics_at_metrics(db, client, settings):
    from insights.tasks import summaries_refresh_recent

    settings.METRICS_TOKEN = "scrape-token"

    client.get("/insights/")
    client.get("/api/v1/insights/", {"range": "bad"})
    summaries_refresh_recent.delay()
    text = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).content.decode()
    assert 'lineage_http_requests_total{method="GET",route="/insights/",status="200"}' in text
    assert 'route="/api/v1/insights/",status="400"' in text
    assert 'lineage_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/insights/"}' in text
    assert 'lineage_celery_task_duration_seconds_count{state="SUCCESS",task="insights.tasks.summaries_refresh_recent"}' \
        in text
    assert "lineage_broker_up 1.0" in text
    assert 'lineage_celery_queue_depth{queue="default"}' in text
    assert "lineage_model_server_up 0.0" in text  # the serving tier's collector is still there


def test_history_generate_rejects_bad_arguments(db):
    for days in (0, -1, 5000, "365"):
        with pytest.raises(ValueError):
            history_generate(days=days)
    assert not (MetricFact.objects.exists() or CohortRetention.objects.exists() or EpochSummary.objects.exists())
