"""The write half of the generated history the demo and tests put on the dashboards
(`lineage.demo.history.history_generate` makes the numbers): every synthetic row is replaced in one
transaction, audited; real rows are never touched."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from accounts.services import AuditAction, audit_record

from ..models import CohortRetention, EpochSummary, MetricFact
from .facts import Facts, state_locked


def synthetic_history_replace(*, facts: Facts, cohorts: list[dict], epochs: list[dict], now, days: int, seed: int,
                              first_day: date, last_day: date) -> int:
    """Replace the synthetic facts, retention cohorts and epochs with these (`cohorts` and `epochs`: the
    fields of `CohortRetention` and `EpochSummary` rows), all flagged `synthetic`; stamp
    `RefreshState.history_generated_at` and audit `insights.history_generate`. Returns how many facts."""
    rows = facts.rows(synthetic=True, now=now)
    cohort_rows = [CohortRetention(**cohort, synthetic=True, computed_at=now) for cohort in cohorts]
    epoch_rows = [EpochSummary(**epoch, synthetic=True, computed_at=now) for epoch in epochs]
    with transaction.atomic(durable=True):
        state = state_locked()
        MetricFact.objects.filter(synthetic=True).delete()
        CohortRetention.objects.filter(synthetic=True).delete()
        EpochSummary.objects.filter(synthetic=True).delete()
        MetricFact.objects.bulk_create(rows, batch_size=2000)
        CohortRetention.objects.bulk_create(cohort_rows, batch_size=2000)
        EpochSummary.objects.bulk_create(epoch_rows, batch_size=2000)
        state.history_generated_at = now
        state.save(update_fields=["history_generated_at"])
        audit_record(actor=None, action=AuditAction.INSIGHTS_HISTORY_GENERATE, object_type="insights.metricfact",
                     details={"days": days, "seed": seed, "facts": len(rows), "first_day": first_day,
                              "last_day": last_day})
    return len(rows)
