"""Insights: summary tables the dashboards read, filled by `services.summaries_refresh` (a beat task).

Pages and the API read only these tables, never the other apps' raw rows, so a dashboard over a year
costs the same as one over a week. Every summary row carries `synthetic`: rows written by
`lineage.demo.history.history_generate` (demo history) are flagged and stored beside the real rows, never summed
into them; readers show a day that has real rows as measured (ignoring its synthetic rows) and mark
every point that used synthetic rows.

`ApiCallCount` and `ServingSample` are this app's own raw inputs: per-day API-call counters written by
the API permission hook, and the model server's cumulative cache counters sampled at each refresh.
"""

from django.db import models
from django.utils import timezone


class Grain(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "ISO week (day = its Monday)"


class ScopeKind(models.TextChoices):
    GLOBAL = "global", "Whole platform"
    DATANET = "datanet", "One Datanet (scope_id = its id)"
    MODEL = "model", "One model version (scope_id = its version hash)"
    API_SCOPE = "api_scope", "One API-key scope (read, contribute, train, infer)"
    BASE = "base", "One base model on the model server"
    USER = "user", "One user (scope_id = user id)"


class MetricFact(models.Model):
    """One number: `metric` for one day (or ISO week) and one scope.

    Additive metrics (counts, tokens, OPEN) are stored per day and summed into weeks when read; metrics
    that do not add up (distinct people, latency percentiles) are also stored per week (`grain=week`).
    A missing row means zero for additive metrics and "no value" for the others."""

    day = models.DateField()
    grain = models.CharField(max_length=8, choices=Grain.choices, default=Grain.DAY)
    metric = models.CharField(max_length=64)
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices, default=ScopeKind.GLOBAL)
    scope_id = models.CharField(max_length=100, blank=True, default="")
    value = models.FloatField()
    synthetic = models.BooleanField(default=False, help_text="Generated demo history, not measured.")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "grain", "metric", "scope_kind", "scope_id", "synthetic"],
                                    name="insights_fact_once"),
        ]
        indexes = [
            # A dashboard reads a few metrics of one scope over a range of days.
            models.Index(fields=["scope_kind", "scope_id", "grain", "day"], name="insights_fact_scope_day"),
            models.Index(fields=["metric", "scope_kind", "grain", "day"], name="insights_fact_metric_day"),
        ]

    def __str__(self):
        flag = " (synthetic)" if self.synthetic else ""
        return f"{self.day} {self.grain} {self.metric} {self.scope_kind}:{self.scope_id} = {self.value}{flag}"


class CohortKind(models.TextChoices):
    CONTRIBUTORS = "contributors", "Contributors (first upload that week)"
    API_USERS = "api_users", "API users (first API-key call that week)"


class CohortRetention(models.Model):
    """Of the people whose first activity fell in `cohort_week`, how many were active `weeks_after` later."""

    kind = models.CharField(max_length=16, choices=CohortKind.choices)
    cohort_week = models.DateField(help_text="Monday of the cohort's first week.")
    weeks_after = models.PositiveSmallIntegerField()
    cohort_size = models.PositiveIntegerField()
    active = models.PositiveIntegerField()
    synthetic = models.BooleanField(default=False)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "cohort_week", "weeks_after"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "cohort_week", "weeks_after", "synthetic"],
                                    name="insights_cohort_once"),
        ]

    def __str__(self):
        return f"{self.kind} {self.cohort_week} +{self.weeks_after}w: {self.active}/{self.cohort_size}"


class EpochSummary(models.Model):
    """One payout epoch in OPEN (floats, for charts; the ledger keeps the exact amounts)."""

    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16)
    frozen_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    accrued = models.FloatField(help_text="OPEN frozen into this epoch.")
    funded = models.FloatField(help_text="OPEN sent to the distributor for it.")
    claimed = models.FloatField(help_text="OPEN claimed on chain between this epoch's freeze and the next one.")
    recipients = models.PositiveIntegerField(default=0)
    synthetic = models.BooleanField(default=False)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["frozen_at", "number"]
        verbose_name_plural = "epoch summaries"
        constraints = [models.UniqueConstraint(fields=["number", "synthetic"], name="insights_epoch_once")]

    def __str__(self):
        return f"epoch {self.number}{' (synthetic)' if self.synthetic else ''}: {self.accrued} OPEN"


class ApiCallCount(models.Model):
    """API calls made with one key in one scope on one day (written by `counters.api_calls_flush`)."""

    day = models.DateField()
    api_key_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    scope = models.CharField(max_length=16)
    calls = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "api_key_id", "scope"], name="insights_api_calls_once")]
        indexes = [models.Index(fields=["user_id", "day"], name="insights_api_calls_user")]

    def __str__(self):
        return f"{self.day} key {self.api_key_id} {self.scope}: {self.calls}"


class ServingSample(models.Model):
    """The model server's cumulative adapter-cache counters for one base, read at one refresh.

    Daily hits and misses are the increases between consecutive samples (a server restart resets its
    counters: a drop counts as a restart from zero, as Prometheus' `increase()` does)."""

    taken_at = models.DateTimeField(default=timezone.now, db_index=True)
    base = models.CharField(max_length=120)
    device_hits = models.BigIntegerField(default=0)
    device_misses = models.BigIntegerField(default=0)
    host_hits = models.BigIntegerField(default=0)
    host_misses = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["taken_at", "id"]

    def __str__(self):
        return f"{self.taken_at:%Y-%m-%d %H:%M} {self.base}"


class RefreshState(models.Model):
    """A singleton (pk=1): locked by each refresh so two never interleave, and what the last one did."""

    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_since = models.DateField(null=True, blank=True)
    last_duration_s = models.FloatField(null=True, blank=True)
    last_facts = models.PositiveIntegerField(default=0)
    history_generated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"insights refresh (last finished {self.last_finished_at})"
