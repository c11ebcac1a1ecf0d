"""What the `lineage` command prints: one-line summaries of results, and for every error what went wrong
(the server's own sentence) and what to do about it."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from .amounts import base_units_to_open
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidAmountError,
    JobFailedError,
    LineageConnectionError,
    LineageError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    WaitTimeoutError,
)
from .types import Contribution, DatanetVersion, Earnings, FineTune, ModelVersion

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTEGRITY, EXIT_JOB_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES_HELP = ("exit codes: 0 done; 1 the server refused or could not be reached (the message says why); "
                   "2 a bad command line or value; 3 a download did not match its hash (nothing kept); 4 the job "
                   "ended failed or cancelled; 130 stopped with Ctrl-C (nothing changed on the server).")

NOT_FOUND_HINTS = {
    "datanets": "Check the slug: `lineage datanets list` shows the Datanets this key can see (private ones only to "
                "their members).",
    "fine-tunes": "`lineage fine-tunes list` shows your fine-tunes; other people's are not visible.",
    "models": "`lineage models list --mine` shows your models; other people's are visible only once deployed.",
    "receipts": "Check the id: a receipt appears a few seconds after its answer.",
    "chat": "`lineage models list` shows the deployed models.",
}


def emit_json(value: Any) -> None:
    raw = getattr(value, "raw", None)
    if isinstance(value, list):
        data = [getattr(v, "raw", None) or _plain(v) for v in value]
    else:
        data = raw if raw is not None else _plain(value)
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def counted(count, noun: str) -> str:
    """"1 contributor", "2 contributors", "0 rows": the count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def contribution_line(c: Contribution) -> str:
    counts = c.counts
    line = (f"Contribution {c.id} to {c.datanet}: {c.state} ({c.progress_percent}%). Rows: {counts.get('total', 0)} "
            f"read, {counts.get('accepted', 0)} into review, {counts.get('rejected', 0)} refused, "
            f"{counted(counts.get('duplicate', 0), 'duplicate')}.")
    if c.state == "failed":
        line += f" Failed: {c.error_message or c.error_code}."
    return line


def version_line(version: DatanetVersion) -> str:
    return (f"Published {version.datanet} v{version.number}: {counted(version.row_count, 'row')} from "
            f"{counted(version.contributor_count, 'contributor')}, hash {version.manifest_hash}. Train on it with "
            f"`lineage fine-tunes launch --datanet {version.ref}`.")


def fine_tune_line(job: FineTune) -> str:
    parts = [f"Fine-tune {job.id} “{job.name}”: {job.state}"]
    if job.total_steps:
        parts.append(f"step {job.step}/{job.total_steps}, epoch {job.epoch}/{job.total_epochs or '?'}")
    if job.last_loss is not None:
        parts.append(f"loss {job.last_loss:.4f}")
    if job.model_version:
        parts.append(f"model {job.model_version}")
    if job.error:
        parts.append(f"error: {job.error}")
    return ", ".join(parts) + "."


def model_lines(model: ModelVersion) -> list[str]:
    lines = [f"Model {model.slug} “{model.name}” ({model.task}, base {model.base_model}): "
             f"{'deployed' if model.deployed else 'not deployed'}, price {model.price_open or '0'} OPEN per answer "
             f"({model.price_per_inference} base units), attribution {model.attribution_status or 'n/a'}."]
    for datanet in (model.lineage or {}).get("datanets", []):
        name = f"{datanet.get('datanet')} v{datanet.get('version')}" if datanet.get("visible") else "a private Datanet"
        lines.append(f"  trained on {name}: {counted(datanet.get('rows'), 'row')} from "
                     f"{counted(datanet.get('contributors'), 'contributor')}, {datanet.get('licence')}, hash "
                     f"{str(datanet.get('version_hash'))[:16]}…")
    for metric in (model.card or {}).get("metrics", []):
        lines.append(f"  {metric.get('label')}: {metric.get('finetuned')} (base model: {metric.get('base')})")
    return lines


def earnings_lines(earnings: Earnings) -> list[str]:
    totals = earnings.totals
    lines = [f"Earned {base_units_to_open(totals.get('earned', 0))} OPEN in all: "
             f"{base_units_to_open(totals.get('accruing', 0))} accruing, {base_units_to_open(totals.get('pending', 0))}"
             f" pending, {base_units_to_open(totals.get('paid_out', 0))} paid out; credit "
             f"{base_units_to_open(totals.get('credit', 0))} OPEN."]
    for item in earnings.items:
        when = f"{item.created_at:%Y-%m-%d %H:%M}" if item.created_at else "-"
        lines.append(f"  {when:<16} {item.role:<11} {item.amount_open or base_units_to_open(item.amount):>22}"
                     f" OPEN  {item.status:<10} inference {item.inference_id}"
                     + (f"  receipt {item.receipt_id}" if item.receipt_id else ""))
    if not earnings.items:
        lines.append("  No earnings yet: they come from answers given by models trained on your rows, or your models.")
    return lines


def _hint(exc: LineageError, *, command: str, url: str, key_source: str, ident: str) -> str:
    keys_page = f"{url}/account/keys/"
    if isinstance(exc, InvalidAmountError):
        return "Give the price in OPEN, e.g. 0.05 (0 is free), or in base units with --base-units."
    if isinstance(exc, AuthenticationError):
        return (f"Check the API key (from {key_source}): run `lineage login` with a valid key; create one at "
                f"{keys_page}.")
    if isinstance(exc, PermissionDeniedError):
        if "scope" in exc.detail:
            return f"Create a key with that scope at {keys_page}, then run `lineage login` with it."
        return "Only the owner (or, for a Datanet, a curator) may do this."
    if isinstance(exc, NotFoundError):
        return NOT_FOUND_HINTS.get(command, "Check the name or id.")
    if isinstance(exc, ConflictError):
        return {"not_cancellable": f"It has already finished: `lineage fine-tunes get {ident}` shows how.",
                "not_resumable": "Only a cancelled or failed fine-tune can be resumed.",
                "index_not_ready": f"Wait until `lineage models get {ident}` shows attribution ready, or set the "
                                   "price to 0."}.get(exc.code, "")
    if isinstance(exc, RateLimitError):
        if exc.code == "insufficient_quota":
            return f"Add credit at {url}/rewards/deposit/."
        return f"Wait {exc.retry_after:g} s and try again." if exc.retry_after else "Wait a little and try again."
    if isinstance(exc, LineageConnectionError):
        return "The URL comes from --url, LINEAGE_URL or `lineage login --url`; is the server running there?"
    if isinstance(exc, ServerError):
        return "The server failed: try again later, and tell its operator if it keeps failing."
    if isinstance(exc, JobFailedError):
        if exc.code in ("fine_tune_cancelled", "fine_tune_failed"):
            return f"`lineage fine-tunes resume {ident}` continues it from its checkpoint."
        return "Fix the file and upload it again."
    if isinstance(exc, WaitTimeoutError):
        return "Run the same `wait` command again to keep waiting."
    if isinstance(exc, IntegrityError):
        return "Try the download again; if it keeps failing, tell the server's operator."
    return ""


def exit_code_for(exc: LineageError) -> int:
    if isinstance(exc, InvalidAmountError) or (isinstance(exc, BadRequestError) and exc.status is None):
        return EXIT_USAGE  # refused before any request: the command line was wrong
    if isinstance(exc, IntegrityError):
        return EXIT_INTEGRITY
    if isinstance(exc, JobFailedError):
        return EXIT_JOB_FAILED
    return EXIT_ERROR


def report_error(exc: LineageError, *, command: str, url: str, key_source: str, ident: str = "") -> int:
    prefix = {AuthenticationError: "The server refused the API key: ", ConfigurationError: ""}.get(type(exc), "")
    status = f" ({exc.status})" if exc.status and exc.status >= 500 else ""
    print(f"error{status}: {prefix}{exc.message}", file=sys.stderr)
    hint = _hint(exc, command=command, url=url, key_source=key_source, ident=ident)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return exit_code_for(exc)
