"""Selectors never write: reading the fee policy on a fresh install saves nothing; the first write does."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from rewards import selectors, services
from rewards.models import Fallback, FeePolicy, FeePolicyVersion

WRITES = ("INSERT", "UPDATE", "DELETE")


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


def test_fee_policy_reads_write_nothing_on_an_empty_database(db, api_client, client):
    assert not FeePolicyVersion.objects.exists() and not FeePolicy.objects.exists()
    with CaptureQueriesContext(connection) as queries:
        in_force = selectors.fee_policy_in_force()
        public = selectors.fee_policy_public()
        api_body = api_client.get("/api/v1/rewards/fee-policy/").json()
        page = client.get("/rewards/fees/")
    assert _writes(queries.captured_queries) == []
    assert not FeePolicyVersion.objects.exists() and not FeePolicy.objects.exists()

    defaults = FeePolicy()
    assert in_force.pk is None
    assert (in_force.version, in_force.protocol_bps, in_force.owner_bps, in_force.contributors_bps,
            in_force.fallback) == (1, defaults.protocol_bps, defaults.owner_bps, defaults.contributors_bps,
                                   Fallback.TRAINING_DATA)
    # Users see version 1 of the defaults, as before: the page and the API show it in the history too.
    for body in (public, api_body):
        assert (body["version"], body["protocol_bps"], body["owner_bps"], body["contributors_bps"]) == (
            1, defaults.protocol_bps, defaults.owner_bps, defaults.contributors_bps)
        assert [v["version"] for v in body["history"]] == [1]
    assert page.status_code == 200


def test_the_first_write_saves_the_version_the_reads_showed(db):
    shown = selectors.fee_policy_in_force()
    saved = services.fee_policy_current()
    assert saved.pk is not None and FeePolicyVersion.objects.count() == 1
    assert (saved.version, saved.protocol_bps, saved.owner_bps, saved.contributors_bps, saved.fallback) == (
        shown.version, shown.protocol_bps, shown.owner_bps, shown.contributors_bps, shown.fallback)
    assert selectors.fee_policy_in_force() == saved
    assert selectors.fee_policy_public()["history"][0]["created_at"] == saved.created_at.isoformat()


def test_the_read_follows_an_admin_edit_made_before_any_version(db):
    # The admin's singleton exists (edited in place) but no version was saved yet: the read reports it.
    FeePolicy.objects.create(pk=1, protocol_bps=2_000, owner_bps=2_000, contributors_bps=6_000,
                             fallback=Fallback.OWNER)
    in_force = selectors.fee_policy_in_force()
    assert (in_force.pk, in_force.version, in_force.protocol_bps, in_force.fallback) == (None, 1, 2_000, Fallback.OWNER)
    assert services.fee_policy_current().protocol_bps == 2_000
