"""Per-day API-call counters, kept cheap: a call adds one to an in-memory tally; the tally is written to
`ApiCallCount` (one upsert per (day, key, scope)) at most every `INSIGHTS_API_CALLS_FLUSH_S` seconds
per process, and at exit. A process killed hard loses at most that many seconds of counts: these are
analytics, not billing (the ledger bills).

Connected to `accounts.permissions.api_key_call`, sent once per API request made with a key, after its
scope check passed.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger("insights")

_lock = threading.Lock()
_pending: Counter = Counter()
_last_flush = time.monotonic()


def api_call_record(*, api_key, scope: str, when=None) -> None:
    global _last_flush
    day = (when or timezone.now()).date()
    with _lock:
        _pending[(day, api_key.pk, api_key.user_id, str(scope)[:16])] += 1
        due = time.monotonic() - _last_flush >= settings.INSIGHTS_API_CALLS_FLUSH_S
        if due:
            _last_flush = time.monotonic()
    if due:
        api_calls_flush()


def on_api_key_call(sender, *, api_key, scope, **kwargs) -> None:
    try:
        api_call_record(api_key=api_key, scope=scope)
    except Exception:  # noqa: BLE001 - counting must never fail the API call it counts
        logger.exception("could not count an API call")


def api_calls_flush(*, log_failures: bool = True) -> int:
    """Write the pending tallies; returns how many calls were written. Tallies that fail to write are
    kept for the next flush."""
    from .models import ApiCallCount

    with _lock:
        batch = dict(_pending)
        _pending.clear()
    written = 0
    try:
        for (day, key_id, user_id, scope), calls in sorted(batch.items()):
            _upsert(ApiCallCount, day=day, key_id=key_id, user_id=user_id, scope=scope, calls=calls)
            written += calls
            batch[(day, key_id, user_id, scope)] = 0
    except Exception:  # noqa: BLE001 - a locked or unreachable database: keep the counts for later
        if log_failures:
            logger.warning("could not write API-call counters; keeping them for the next flush", exc_info=True)
        with _lock:
            _pending.update({k: v for k, v in batch.items() if v})
    return written


def _upsert(model, *, day, key_id, user_id, scope, calls) -> None:
    key = {"day": day, "api_key_id": key_id, "scope": scope}
    if model.objects.filter(**key).update(calls=F("calls") + calls):
        return
    try:
        with transaction.atomic():
            model.objects.create(**key, user_id=user_id, calls=calls)
    except IntegrityError:  # another process created it between the update and the insert
        model.objects.filter(**key).update(calls=F("calls") + calls)


def _flush_at_exit() -> None:
    if _pending:
        try:
            # Quiet: at exit the database may already be gone (a test run drops its database first).
            api_calls_flush(log_failures=False)
        except Exception:  # noqa: BLE001 - the interpreter is shutting down
            pass


atexit.register(_flush_at_exit)
