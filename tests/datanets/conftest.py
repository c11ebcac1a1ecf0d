"""Shared fixtures for Datanets tests (API, pages, permission matrix).

Everything goes through the real services: Datanets are created by `datanet_create`, rows arrive by
`contribution_create_from_rows` and are validated by the (eager) Celery task when the transaction's
on-commit callbacks run, exactly as in production after the request commits.
"""

import pytest


@pytest.fixture(autouse=True)
def _isolated_near_dup_cache(settings, tmp_path):
    """The near-duplicate index is cached on disk per Datanet id; ids repeat between tests (each test's
    transaction is rolled back), so each test gets its own cache folder."""
    settings.DATANETS_CACHE_DIR = tmp_path / "datanets-cache"


@pytest.fixture
def datanet_factory(db):
    """`datanet_factory(owner, **overrides)`: a Datanet made by the service (text classification by default)."""
    from datanets.services import datanet_create

    counter = {"n": 0}

    def make(owner, **overrides):
        counter["n"] += 1
        options = {
            "name": f"Sentiment {counter['n']}",
            "task_type": "text-classification",
            "label_set": ["positive", "negative"],
            "summary": "Short product reviews labelled by sentiment.",
            "tags": ["reviews", "sentiment"],
        }
        options.update(overrides)
        return datanet_create(owner=owner, **options)

    return make


@pytest.fixture
def upload_rows(django_capture_on_commit_callbacks):
    """`upload_rows(datanet, user, rows)`: contribute JSON rows and run validation; returns the
    refreshed contribution."""
    from datanets.services import contribution_create_from_rows

    def upload(datanet, user, rows):
        with django_capture_on_commit_callbacks(execute=True):
            contribution = contribution_create_from_rows(datanet=datanet, contributor=user, rows=rows)
        contribution.refresh_from_db()
        return contribution

    return upload


@pytest.fixture
def published_version(upload_rows):
    """`published_version(datanet, curator, rows=None, notes="")`: upload rows as the curator, accept
    every pending row and publish a version through the services; returns the version."""
    from datanets.models import Record, RecordStatus
    from datanets.services import records_review, version_publish

    def publish(datanet, curator, rows=None, notes=""):
        if rows:
            upload_rows(datanet, curator, rows)
        pending = list(Record.objects.filter(datanet=datanet, status=RecordStatus.PENDING).values_list("pk", flat=True))
        if pending:
            records_review(datanet=datanet, reviewer=curator, record_ids=pending, decision="accept")
        return version_publish(datanet=datanet, actor=curator, notes=notes)

    return publish


def sentiment_rows(n, *, start=0, prefix="Review"):
    """Distinct, realistic-looking rows for a positive/negative Datanet."""
    adjectives = ["sturdy", "flimsy", "quiet", "noisy", "bright", "dim", "fast", "slow", "cheap", "pricey"]
    things = ["kettle", "lamp", "keyboard", "backpack", "blender", "charger", "umbrella", "monitor"]
    rows = []
    for i in range(start, start + n):
        adjective, thing = adjectives[i % len(adjectives)], things[(i // len(adjectives)) % len(things)]
        label = "positive" if i % 2 == 0 else "negative"
        rows.append({"text": f"{prefix} {i}: the {adjective} {thing} arrived on day {i * 7 % 31 + 1} and works as sold.",
                     "label": label})
    return rows


@pytest.fixture
def rows_of():
    return sentiment_rows
