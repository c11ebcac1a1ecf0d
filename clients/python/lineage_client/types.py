"""Typed results: one frozen dataclass per kind of object the API returns. Each keeps the whole answer in
`raw`, so a field the SDK does not name yet is still there. Amounts of OPEN are `int` base units
(1 OPEN = 10**18), converted from the API's strings of digits; `*_open` fields are the same amount in OPEN,
as text for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# States after which a job no longer changes by itself.
CONTRIBUTION_FINISHED = ("in_review", "done", "failed")
FINE_TUNE_FINISHED = ("succeeded", "failed", "cancelled")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _units(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


@dataclass(frozen=True)
class Me:
    id: int
    email: str
    display_name: str
    scopes: list[str]
    raw: dict = field(repr=False)

    @classmethod
    def from_api(cls, data: dict) -> Me:
        return cls(data["id"], data.get("email", ""), data.get("display_name", ""), list(data.get("scopes", [])), data)


@dataclass(frozen=True)
class Datanet:
    slug: str
    name: str
    task_type: str
    label_set: list[str]
    visibility: str
    licence: str
    owner: str
    accepted_rows: int
    url: str
    raw: dict = field(repr=False)

    @classmethod
    def from_api(cls, data: dict) -> Datanet:
        return cls(data["slug"], data["name"], data["task_type"], list(data.get("label_set", [])),
                   data.get("visibility", ""), data.get("licence", ""), (data.get("owner") or {}).get("username", ""),
                   int(data.get("accepted_rows") or 0), data.get("url", ""), data)


@dataclass(frozen=True)
class Contribution:
    id: int
    datanet: str
    state: str
    progress_percent: int
    counts: dict[str, int]
    file_name: str
    file_sha256: str
    size_bytes: int
    error_code: str
    error_message: str
    notes: list[str]
    created_at: datetime | None
    raw: dict = field(repr=False)

    @property
    def finished(self) -> bool:
        """Validation is over: rows are in review (or all done), or the whole file failed."""
        return self.state in CONTRIBUTION_FINISHED

    @classmethod
    def from_api(cls, data: dict) -> Contribution:
        return cls(data["id"], data["datanet"], data["state"], int(data.get("progress_percent") or 0),
                   dict(data.get("counts") or {}), data.get("file_name", ""), data.get("file_sha256", ""),
                   int(data.get("size_bytes") or 0), data.get("error_code", ""), data.get("error_message", ""),
                   list(data.get("notes") or []), _time(data.get("created_at")), data)


@dataclass(frozen=True)
class RowError:
    row: int | None
    line: int | None
    code: str
    message: str
    duplicate_of: int | None

    @classmethod
    def from_api(cls, data: dict) -> RowError:
        return cls(data.get("row"), data.get("line"), data["code"], data["message"], data.get("duplicate_of"))


@dataclass(frozen=True)
class DatanetVersion:
    datanet: str
    number: int
    manifest_hash: str
    row_count: int
    contributor_count: int
    notes: str
    created_at: datetime | None
    manifest: dict | None = field(repr=False)
    raw: dict = field(repr=False)

    @property
    def ref(self) -> str:
        """"slug:number", as fine-tune specs name a version."""
        return f"{self.datanet}:{self.number}"

    @classmethod
    def from_api(cls, data: dict) -> DatanetVersion:
        return cls(data["datanet"], data["number"], data["manifest_hash"], int(data.get("row_count") or 0),
                   int(data.get("contributor_count") or 0), data.get("notes", ""), _time(data.get("created_at")),
                   data.get("manifest"), data)


@dataclass(frozen=True)
class Download:
    """A file written by a download, and how its content was checked."""

    path: Path
    size: int
    sha256: str
    verified: str  # what was compared with what, in words


@dataclass(frozen=True)
class BaseModel:
    slug: str
    name: str
    task_types: list[str]
    parameters: int
    raw: dict = field(repr=False)

    @classmethod
    def from_api(cls, data: dict) -> BaseModel:
        return cls(data["slug"], data["name"], list(data.get("task_types", [])), int(data.get("parameters") or 0),
                   data)


@dataclass(frozen=True)
class FineTune:
    id: int
    name: str
    state: str
    base_model: str
    task: str
    datanet_versions: list[str]
    hyperparameters: dict
    progress_percent: int
    step: int
    total_steps: int
    epoch: int
    total_epochs: int | None
    eta_s: float | None
    loss_curve: list[tuple[int, float]]
    error: str
    log: list[str]
    cancel_requested: bool
    resumable: bool
    model_version: str | None
    url: str
    raw: dict = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINE_TUNE_FINISHED

    @property
    def last_loss(self) -> float | None:
        return self.loss_curve[-1][1] if self.loss_curve else None

    @classmethod
    def from_api(cls, data: dict) -> FineTune:
        versions = [f"{v['datanet']}:{v['number']}" for v in data.get("datanet_versions") or []]
        curve = [(int(step), float(loss)) for step, loss in data.get("loss_curve") or []]
        return cls(data["id"], data.get("name", ""), data["state"], data.get("base_model", ""), data.get("task", ""),
                   versions, dict(data.get("hyperparameters") or {}), int(data.get("progress_percent") or 0),
                   int(data.get("step") or 0), int(data.get("total_steps") or 0), int(data.get("epoch") or 0),
                   data.get("total_epochs"), data.get("eta_s"), curve, data.get("error", ""),
                   list(data.get("log") or []), bool(data.get("cancel_requested")), bool(data.get("resumable")),
                   data.get("model_version"), data.get("url", ""), data)


@dataclass(frozen=True)
class ModelVersion:
    slug: str
    name: str
    version_hash: str
    base_model: str
    task: str
    label_names: list[str]
    owner: str
    deployed: bool
    allow_download: bool
    price_per_inference: int  # OPEN base units
    price_open: str
    attribution_status: str
    card: dict | None = field(repr=False)  # detail only
    lineage: dict | None = field(repr=False)  # detail only: the Datanet versions that trained it
    raw: dict = field(repr=False)

    @classmethod
    def from_api(cls, data: dict) -> ModelVersion:
        return cls(data["slug"], data.get("name", ""), data.get("version_hash", ""), data.get("base_model", ""),
                   data.get("task", ""), list(data.get("label_names") or []),
                   (data.get("owner") or {}).get("username", ""), bool(data.get("deployed")),
                   bool(data.get("allow_download")), _units(data.get("price_per_inference")),
                   data.get("price_open", ""), data.get("attribution_status", ""), data.get("card"),
                   data.get("lineage"), data)


@dataclass(frozen=True)
class ChatAnswer:
    """A `/v1/chat/completions` answer: the text, and the receipt that attributes it."""

    text: str
    model: str
    finish_reason: str | None
    inference_id: str | None
    receipt_id: str | None
    receipt_url: str | None
    receipt_status: str | None
    fee: int  # OPEN base units
    label: str | None  # classifiers: the predicted label (also `text`)
    probabilities: dict[str, float] | None
    raw: dict = field(repr=False)

    @classmethod
    def from_api(cls, data: dict) -> ChatAnswer:
        choice = (data.get("choices") or [{}])[0]
        lineage = data.get("lineage") or {}
        classification = lineage.get("classification") or {}
        return cls((choice.get("message") or {}).get("content") or "", data.get("model", ""),
                   choice.get("finish_reason"), lineage.get("inference_id"), lineage.get("receipt_id"),
                   lineage.get("receipt_url"), lineage.get("receipt_status"), _units(lineage.get("fee")),
                   classification.get("label"), classification.get("probabilities"), data)


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    model: str
    model_version_hash: str
    inference_id: str | None
    method: str
    top_rows: list[dict]
    contributor_shares_ppm: dict[str, int]
    contributor_names: dict[str, str]
    empty_reason: str
    url: str
    created_at: datetime | None
    raw: dict = field(repr=False)

    @classmethod
    def from_api(cls, data: dict) -> Receipt:
        return cls(data["receipt_id"], data.get("model", ""), data.get("model_version_hash", ""),
                   data.get("inference_id"), data.get("method", ""), list(data.get("top_rows") or []),
                   {str(k): int(v) for k, v in (data.get("contributor_shares_ppm") or {}).items()},
                   dict(data.get("contributor_names") or {}), data.get("empty_reason") or "", data.get("url", ""),
                   _time(data.get("created_at")), data)


@dataclass(frozen=True)
class Earning:
    """One share of one answer's fee."""

    inference_id: str
    model_version_hash: str
    receipt_id: str | None
    role: str  # "contributor" or "owner"
    amount: int  # OPEN base units
    amount_open: str
    rows: Any
    epoch: int | None
    status: str
    created_at: datetime | None
    id: int | None = None  # the share's id (servers before the earnings pages sent none)

    @classmethod
    def from_api(cls, data: dict) -> Earning:
        return cls(str(data.get("inference_id", "")), data.get("model_version_hash", ""), data.get("receipt_id"),
                   data.get("role", ""), _units(data.get("amount")), data.get("amount_open", ""), data.get("rows"),
                   data.get("epoch"), data.get("status", ""), _time(data.get("created_at")), data.get("id"))


@dataclass(frozen=True)
class Earnings:
    totals: dict[str, int]  # earned, accruing, held, withheld, pending, paid_out, credit, credit_held
    totals_open: dict[str, str]
    items: list[Earning]
    raw: dict = field(repr=False)

    @classmethod
    def from_api(cls, data: dict) -> Earnings:
        rows = data.get("results", data.get("items")) or []  # `items`: a server from before the earnings pages
        return cls({k: _units(v) for k, v in (data.get("totals") or {}).items()},
                   dict(data.get("totals_open") or {}), [Earning.from_api(i) for i in rows], data)
