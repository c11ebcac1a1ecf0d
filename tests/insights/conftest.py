"""Insights fixtures: a frozen clock for every test (the dashboards bucket by UTC day and ISO week), a
model-server address where nothing listens (so a refresh never samples a server another process started) and
helpers to read facts; the chain is the shared `chain` fixture."""

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct


@pytest.fixture(autouse=True)
def _insights_clock(frozen_clock):
    """Autouse, so the clock is stopped before any fixture writes a row: at noon UTC on `calendar_day` in tests
    that ask for it (each of tests/conftest.py's CALENDAR_DAYS), on CLOCK_DEFAULT_DAY in the others."""
    return frozen_clock


@pytest.fixture(autouse=True)
def _insights_settings(settings):
    settings.INFERENCE_SERVER_URL = "http://127.0.0.1:9"  # discard port: connection refused at once
    settings.INSIGHTS_API_CALLS_FLUSH_S = 0  # count every API call straight into the table
    from insights import counters

    counters._pending.clear()


@pytest.fixture
def link_wallet():
    from rewards.services import wallet_link, wallet_nonce_issue

    def link(user, account):
        issued = wallet_nonce_issue(user=user, address=account.address)
        signature = Account.sign_message(encode_defunct(text=issued.message), private_key=account.key).signature
        return wallet_link(user=user, message=issued.message, signature="0x" + bytes(signature).hex())

    return link


@pytest.fixture
def fact():
    """The value of one real fact (None when there is no row)."""
    from insights.models import MetricFact

    def read(metric, day, scope_kind="global", scope_id="", grain="day", synthetic=False):
        row = MetricFact.objects.filter(metric=metric, day=day, scope_kind=scope_kind, scope_id=str(scope_id),
                                        grain=grain, synthetic=synthetic).first()
        return None if row is None else row.value

    return read


@pytest.fixture
def facts_snapshot():
    from insights.models import CohortRetention, EpochSummary, MetricFact

    def snapshot():
        return (
            sorted(MetricFact.objects.values_list("day", "grain", "metric", "scope_kind", "scope_id", "value",
                                                  "synthetic")),
            sorted(CohortRetention.objects.values_list("kind", "cohort_week", "weeks_after", "cohort_size", "active",
                                                       "synthetic")),
            sorted(EpochSummary.objects.values_list("number", "accrued", "funded", "claimed", "recipients",
                                                    "synthetic")),
        )

    return snapshot
