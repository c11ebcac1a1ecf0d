"""Issue #17, item 8b: the beat schedule is what the docs say it is.

Every entry of `app.conf.beat_schedule` names a registered task, its arguments and options survive JSON (the
only serializer the broker accepts) and bind to the task's signature, and its schedule fires as documented:
checked with beat's own `ScheduleEntry` and `is_due` / `remaining_estimate` at frozen moments (2026-12-07 is a
Monday), not by waiting. An entry added without a row in `DOCUMENTED` fails the test."""

import copy
import inspect
import json
from datetime import UTC, datetime, timedelta

import pytest
from celery.beat import ScheduleEntry
from django.conf import settings

from lineage.celery import app

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)

# name: (task, where the cadence is documented)
DOCUMENTED = {
    "rewards-settle-fees": ("rewards.tasks.fees_settle", "every REWARDS_SETTLE_EVERY_S (5 s): docs/rewards.md"),
    "insights-summaries-refresh": ("insights.tasks.summaries_refresh_recent",
                                   "every INSIGHTS_REFRESH_EVERY_S (5 min): docs/architecture.md"),
    "rewards-index-deposits": ("rewards.tasks.chain_index_deposits", "every minute: docs/rewards.md"),
    "rewards-index-claims": ("rewards.tasks.chain_index_claims", "every minute"),
    "governance-index": ("governance.tasks.chain_index_governance", "every minute: docs/governance.md"),
    "rewards-reconcile": ("rewards.tasks.chain_reconcile", "hourly (at :17): docs/rewards.md"),
    "rewards-epoch-close": ("rewards.tasks.epoch_close_scheduled",
                            "checks every REWARDS_EPOCH_CHECK_EVERY_S (5 min) whether the epoch length has passed: "
                            "docs/rewards.md, docs/governance.md"),
}


def entry_at(name: str, *, last_run_at: datetime, now: datetime) -> ScheduleEntry:
    """The entry as `celery beat` builds it (`ScheduleEntry` turns a timedelta into a `schedule`), on a copy of
    its schedule whose clock is frozen at `now`."""
    config = app.conf.beat_schedule[name]
    entry = ScheduleEntry(name=name, task=config["task"], last_run_at=last_run_at, schedule=config["schedule"],
                          args=config.get("args", ()), kwargs=config.get("kwargs", {}),
                          options=config.get("options", {}), app=app)
    entry.schedule = copy.copy(entry.schedule)
    entry.schedule.nowfun = lambda: now
    return entry


def due(name: str, *, last_run_at: datetime, now: datetime) -> tuple[bool, float]:
    return entry_at(name, last_run_at=last_run_at, now=now).is_due()


def test_every_entry_names_a_registered_task_with_json_arguments_and_is_documented():
    app.loader.import_default_modules()  # what the worker and beat do at start: every app's tasks module
    schedule = app.conf.beat_schedule
    assert {name: config["task"] for name, config in schedule.items()} == {
        name: task for name, (task, _) in DOCUMENTED.items()}
    for name, config in schedule.items():
        task = app.tasks[config["task"]]  # KeyError: beat would send a message no worker knows
        args, kwargs, options = config.get("args", ()), config.get("kwargs", {}), config.get("options", {})
        assert json.loads(json.dumps([list(args), kwargs, options])) == [list(args), kwargs, options], name
        inspect.signature(task.run).bind(*args, **kwargs)  # TypeError: the worker could not call it
        queue = app.amqp.router.route(options, config["task"])["queue"].name
        assert queue == ("chain" if ".chain_" in config["task"] else "default"), (name, queue)


def test_fee_settlement_fires_every_five_seconds_and_a_missed_run_expires():
    assert settings.REWARDS_SETTLE_EVERY_S == 5.0
    now = MONDAY + timedelta(hours=9)
    assert due("rewards-settle-fees", last_run_at=now - timedelta(seconds=5), now=now) == (True, 5.0)
    is_due, next_in = due("rewards-settle-fees", last_run_at=now - timedelta(seconds=3), now=now)
    assert not is_due and next_in == pytest.approx(2.0)
    # Queued while no worker runs, a settlement is dropped after two periods instead of piling up.
    assert app.conf.beat_schedule["rewards-settle-fees"]["options"]["expires"] == 10.0


def test_dashboard_summaries_refresh_every_five_minutes():
    now = MONDAY + timedelta(hours=9)
    assert due("insights-summaries-refresh", last_run_at=now - timedelta(minutes=5), now=now)[0]
    is_due, next_in = due("insights-summaries-refresh", last_run_at=now - timedelta(minutes=4), now=now)
    assert not is_due and next_in == pytest.approx(60.0)
    assert app.conf.beat_schedule["insights-summaries-refresh"]["options"]["expires"] == 300


@pytest.mark.parametrize("name", ["rewards-index-deposits", "rewards-index-claims", "governance-index"])
def test_chain_indexers_run_every_minute(name):
    now = MONDAY + timedelta(hours=9, seconds=30)
    assert due(name, last_run_at=now - timedelta(seconds=60), now=now) == (True, 60.0)
    is_due, next_in = due(name, last_run_at=now - timedelta(seconds=45), now=now)
    assert not is_due and next_in == pytest.approx(15.0)


def test_reconciliation_runs_hourly_at_seventeen_past():
    last = MONDAY + timedelta(hours=9, minutes=17, seconds=2)
    assert not due("rewards-reconcile", last_run_at=last, now=MONDAY + timedelta(hours=10, minutes=16, seconds=59))[0]
    is_due, next_in = due("rewards-reconcile", last_run_at=last, now=MONDAY + timedelta(hours=10, minutes=17, seconds=1))
    assert is_due and next_in == pytest.approx(3599.0)  # next at 11:17:00
    entry = entry_at("rewards-reconcile", last_run_at=last, now=MONDAY + timedelta(hours=9, minutes=30))
    assert entry.schedule.remaining_estimate(last) == timedelta(minutes=47)  # 09:30 -> 10:17


def test_epoch_close_is_checked_every_five_minutes_and_a_missed_check_expires():
    """The beat only asks whether a close is due: the epoch length in force (governed, else
    REWARDS_EPOCH_LENGTH_S, a week) decides, in `rewards.services.epoch_close_due`
    (tests/governance/test_governed_parameters.py)."""
    assert settings.REWARDS_EPOCH_CHECK_EVERY_S == 300 and settings.REWARDS_EPOCH_LENGTH_S == 7 * 86400
    now = MONDAY + timedelta(hours=9)
    assert due("rewards-epoch-close", last_run_at=now - timedelta(minutes=5), now=now) == (True, 300.0)
    is_due, next_in = due("rewards-epoch-close", last_run_at=now - timedelta(minutes=4), now=now)
    assert not is_due and next_in == pytest.approx(60.0)
    assert app.conf.beat_schedule["rewards-epoch-close"]["options"]["expires"] == 300
