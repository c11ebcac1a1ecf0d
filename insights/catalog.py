"""What the dashboards measure: every metric the summary tables hold, and the charts drawn from them.

A metric's `weekly` says how a week is read: "sum" adds its days, "last" takes the week's last day
(a running total), "own" reads a fact computed for the week itself (distinct people, percentiles).
Charts name series by metric; a series may pin its own scope (API calls by scope) and a derived
series is a ratio of sums (acceptance rate, cache hit rate), computed from the summed buckets so a
weekly rate is never an average of daily rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    weekly: str = "sum"  # "sum", "last" or "own"

    @property
    def additive(self) -> bool:
        return self.weekly == "sum"


METRICS = {m.name: m for m in (
    # Contributions (scopes: global, datanet)
    Metric("contrib.contributions", "Uploads", "uploads"),
    Metric("contrib.rows_submitted", "Rows submitted", "rows"),
    Metric("contrib.rows_accepted", "Rows accepted by curators", "rows"),
    Metric("contrib.rows_rejected", "Rows rejected (validation or review)", "rows"),
    Metric("contrib.rows_invalid", "Rows rejected at validation", "rows"),
    Metric("contrib.rows_duplicate", "Exact duplicates caught", "rows"),
    Metric("contrib.rows_near_duplicate", "Near-duplicates flagged", "rows"),
    Metric("contrib.new_contributors", "New contributors", "people"),
    Metric("contrib.active_contributors", "Active contributors", "people", weekly="own"),
    # ModelFactory (global)
    Metric("models.finetunes_launched", "Fine-tunes launched", "jobs"),
    Metric("models.finetunes_succeeded", "Fine-tunes succeeded", "jobs"),
    Metric("models.finetunes_failed", "Fine-tunes failed", "jobs"),
    Metric("models.versions_registered", "Model versions registered", "versions"),
    Metric("models.versions_deployed", "Model versions deployed", "versions"),
    Metric("models.deployed_total", "Models serving", "versions", weekly="last"),
    # Inference (global, model)
    Metric("infer.requests", "Requests", "requests"),
    Metric("infer.requests_failed", "Failed requests", "requests"),
    Metric("infer.tokens_in", "Tokens in", "tokens"),
    Metric("infer.tokens_out", "Tokens out", "tokens"),
    Metric("infer.latency_p50_ms", "Latency p50", "ms", weekly="own"),
    Metric("infer.latency_p99_ms", "Latency p99", "ms", weekly="own"),
    # Serving (global, base): the model server's adapter cache, device tier
    Metric("serving.cache_hits", "Adapter cache hits", "lookups"),
    Metric("serving.cache_misses", "Adapter cache misses", "lookups"),
    # Developers (global, api_scope)
    Metric("dev.api_calls", "API calls", "calls"),
    Metric("dev.active_api_keys", "Active API keys", "keys", weekly="own"),
    Metric("dev.active_api_users", "Active API users", "people", weekly="own"),
    Metric("dev.api_keys_created", "API keys created", "keys"),
    # Rewards (global, model; earned also per user)
    Metric("rewards.settlements", "Paid answers", "answers"),
    Metric("rewards.fees", "Fees", "OPEN"),
    Metric("rewards.to_contributors", "To contributors", "OPEN"),
    Metric("rewards.to_owners", "To model owners", "OPEN"),
    Metric("rewards.to_protocol", "To the protocol", "OPEN"),
    Metric("rewards.claimed", "Claimed on chain", "OPEN"),
    Metric("rewards.earned", "Earned as contributor", "OPEN"),
)}


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    metric: str = ""
    scope_kind: str | None = None  # None: the page's scope
    scope_id: str | None = None
    ratio: tuple[str, tuple[str, ...]] | None = None  # (numerator metric, denominator metrics), summed per bucket
    percent: bool = False

    def metrics(self) -> list[str]:
        if self.ratio:
            return [self.ratio[0], *self.ratio[1]]
        return [self.metric]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    description: str
    unit: str
    series: tuple[Series, ...]
    kind: str = "line"  # "line" or "bar"
    stacked: bool = False
    section: str = ""
    extra_scopes: tuple = field(default=())

    def metrics(self) -> set[str]:
        return {m for s in self.series for m in s.metrics()}


def _s(metric, label=None, **kw):
    return Series(key=metric.split(".", 1)[1] if "." in metric else metric, label=label or METRICS[metric].label,
                  metric=metric, **kw)


ACCEPTANCE = Series(key="acceptance_rate", label="Acceptance rate",
                    ratio=("contrib.rows_accepted", ("contrib.rows_accepted", "contrib.rows_rejected")), percent=True)
HIT_RATE = Series(key="cache_hit_rate", label="Device cache hit rate",
                  ratio=("serving.cache_hits", ("serving.cache_hits", "serving.cache_misses")), percent=True)
CONTRIBUTOR_SHARE = Series(key="contributor_share", label="Share of fees to contributors",
                           ratio=("rewards.to_contributors", ("rewards.fees",)), percent=True)

CONTRIBUTION_CHARTS = (
    Chart("contribution_velocity", "Contribution velocity",
          "Rows submitted, accepted by curators, rejected (at validation or in review) and exact duplicates caught.",
          "rows", (_s("contrib.rows_submitted", "Submitted"), _s("contrib.rows_accepted", "Accepted"),
                   _s("contrib.rows_rejected", "Rejected"), _s("contrib.rows_duplicate", "Duplicates")),
          section="contributions"),
    Chart("contributors", "Contributors", "People contributing for the first time, and everyone who uploaded.",
          "people", (_s("contrib.new_contributors", "New"), _s("contrib.active_contributors", "Active")),
          kind="bar", section="contributions"),
    Chart("acceptance_rate", "Acceptance rate",
          "Accepted rows as a share of the rows decided (accepted or rejected) in each period.",
          "%", (ACCEPTANCE,), section="contributions"),
)
MODEL_CHARTS = (
    Chart("fine_tunes", "Fine-tunes", "Fine-tune jobs launched, and those that finished successfully or failed.",
          "jobs", (_s("models.finetunes_launched", "Launched"), _s("models.finetunes_succeeded", "Succeeded"),
                   _s("models.finetunes_failed", "Failed")), kind="bar", section="models"),
    Chart("deployments", "Model deployment growth", "Model versions deployed, and how many are serving.",
          "versions", (_s("models.versions_deployed", "Deployed"), _s("models.deployed_total", "Serving")),
          section="models"),
)
INFERENCE_CHARTS = (
    Chart("inference_requests", "Inference requests", "Requests to the OpenAI-compatible API, and those that failed.",
          "requests", (_s("infer.requests", "Requests"), _s("infer.requests_failed", "Failed")), section="inference"),
    Chart("inference_tokens", "Tokens", "Prompt tokens in and generated tokens out.", "tokens",
          (_s("infer.tokens_in", "In"), _s("infer.tokens_out", "Out")), kind="bar", stacked=True, section="inference"),
    Chart("inference_fees", "Fees", "OPEN charged for answers.", "OPEN", (_s("rewards.fees", "Fees"),),
          kind="bar", section="inference"),
    Chart("latency", "Latency", "Time to a complete answer: median (p50) and 99th percentile.", "ms",
          (_s("infer.latency_p50_ms", "p50"), _s("infer.latency_p99_ms", "p99")), section="inference"),
    Chart("cache_hit_rate", "Adapter cache hit rate",
          "Share of adapter lookups the model server answered from a device slot.", "%", (HIT_RATE,),
          section="inference"),
)
DEVELOPER_CHARTS = (
    Chart("api_calls", "API calls by scope", "Calls made with API keys, by the scope each call needed.", "calls",
          tuple(_s("dev.api_calls", scope, scope_kind="api_scope", scope_id=scope)
                for scope in ("read", "contribute", "train", "infer")),
          kind="bar", stacked=True, section="developers"),
    Chart("api_keys", "Active API keys", "Keys that made at least one call, and keys created.", "keys",
          (_s("dev.active_api_keys", "Active"), _s("dev.api_keys_created", "Created")), kind="bar",
          section="developers"),
)
REWARD_CHARTS = (
    Chart("fee_split", "Where fees go", "Each period's fees split between contributors, model owners and the protocol.",
          "OPEN", (_s("rewards.to_contributors", "Contributors"), _s("rewards.to_owners", "Model owners"),
                   _s("rewards.to_protocol", "Protocol")), kind="bar", stacked=True, section="rewards"),
    Chart("contributor_share", "Share of fees reaching contributors",
          "Contributors' part of the fees (the rest goes to model owners and the protocol).", "%",
          (CONTRIBUTOR_SHARE,), section="rewards"),
    Chart("claims", "Claimed on chain", "OPEN claimed from the distributor.", "OPEN",
          (_s("rewards.claimed", "Claimed"),), kind="bar", section="rewards"),
)

OVERVIEW_CHARTS = CONTRIBUTION_CHARTS + MODEL_CHARTS + INFERENCE_CHARTS + DEVELOPER_CHARTS + REWARD_CHARTS
DATANET_CHARTS = CONTRIBUTION_CHARTS
MODEL_VERSION_CHARTS = (
    INFERENCE_CHARTS[0], INFERENCE_CHARTS[1], INFERENCE_CHARTS[2], INFERENCE_CHARTS[3],
    REWARD_CHARTS[0], REWARD_CHARTS[1],
)

SECTIONS = (
    ("contributions", "Datasets: contribution velocity"),
    ("models", "ModelFactory: deployment growth"),
    ("inference", "Inference utilisation"),
    ("developers", "Developer activity"),
    ("rewards", "Rewards"),
)

# The ranges offered on the page; the API accepts any `<n>d` or `<n>w` up to RANGE_MAX_DAYS, and `all`.
RANGE_CHOICES = ("7d", "30d", "90d", "180d", "365d", "all")
RANGE_MAX_DAYS = 3660
BUCKETS = ("day", "week")
RETENTION_WEEKS_SHOWN = 12
