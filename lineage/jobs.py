"""One way to run a long job: upload validation, fine-tunes, attribution index builds, epoch closes.

A job is a row with a `state` and an `attempts` counter, run by a Celery task that may be delivered
more than once (`acks_late`, `reject_on_worker_lost`: a worker that dies mid-job has its task delivered
again). Each app keeps its own row shape and its own failure writer (with its audit event); this module
decides when a delivery runs, when a job has failed, and what its owner is told.

* `claim_job` starts a delivery. In one transaction it locks the row; a job that is finished (or
  failed) is returned untouched, so a second delivery does nothing; a job found in its running state
  was started by a delivery whose worker died, and counts one more attempt; past `max_attempts`
  (setting `JOB_MAX_ATTEMPTS`) it is failed with a reason its owner can act on instead of running again.
  The row is locked waiting, not skipped (`skip_locked`): a delivery that skipped a row locked by a
  short write (a cancel, a queue) would be acknowledged and the job never run.
* `run_job` runs the work and turns an exception into the job's failure (`job_failure`): an
  `ExpectedJobError`, or a domain error the caller lists as expected, is stored and shown as it is;
  anything else is logged with its traceback under a short error id, and users see only a generic
  message with that id, never the exception's type or text.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

UNEXPECTED_CODE = "unexpected_error"
TIME_LIMIT_CODE = "time_limit"
TOO_MANY_ATTEMPTS_CODE = "too_many_attempts"
CRASHED = "the worker crashed each time"
RETRY_OR_ASK = "Try it again, or contact an admin if it keeps failing."


class ExpectedJobError(Exception):
    """A failure the job's owner can act on: its message is stored and shown as it is, so write it for
    them (what is wrong and what to do). `code` is a stable identifier where the row stores one."""

    code = "failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


@dataclass(frozen=True)
class JobFailure:
    """Why a job stopped. `message` is what users see; `error_id` (unexpected errors only) finds the
    traceback in the server logs."""

    message: str
    code: str
    expected: bool
    error_id: str = ""


@dataclass(frozen=True)
class Claim:
    """The outcome of `claim_job`. `run`: this delivery does the work. `redelivered`: an earlier delivery
    started this run and never finished it. `failure`: the claim failed the job (too many attempts)."""

    job: Any
    run: bool
    redelivered: bool = False
    failure: JobFailure | None = None


def max_job_attempts() -> int:
    return max(1, int(getattr(settings, "JOB_MAX_ATTEMPTS", 3)))


def unexpected_message(error_id: str) -> str:
    return f"An unexpected error stopped this job (error id {error_id}); the details are in the server logs."


def attempts_exhausted_message(*, label: str, attempts: int, cause: str = CRASHED, action: str = RETRY_OR_ASK) -> str:
    return f"The {label} stopped after {attempts} attempts: {cause}. {action}"


def job_failure(exc: BaseException, *, label: str, pk: Any, expected: Iterable[type[BaseException]] = ()) -> JobFailure:
    """Describe `exc` for the job's owner. Expected errors keep their message (and `code` when they have
    one); an unexpected error is logged here, with its traceback, under a fresh error id."""
    expected = tuple(expected)
    if isinstance(exc, ExpectedJobError) or (expected and isinstance(exc, expected)):
        message = getattr(exc, "message", None)
        message = message if isinstance(message, str) and message else (str(exc) or type(exc).__name__)
        code = getattr(exc, "code", None)
        logger.warning("%s %s failed: %s", label, pk, message)
        return JobFailure(message=message, code=code if isinstance(code, str) and code else "failed", expected=True)
    if isinstance(exc, SoftTimeLimitExceeded):
        logger.warning("%s %s ran past its time limit", label, pk)
        return JobFailure(message=(f"The {label} ran past its time limit and was stopped. Make the job smaller, "
                                   "or ask an admin to raise the limit."), code=TIME_LIMIT_CODE, expected=True)
    error_id = uuid.uuid4().hex[:12]
    logger.error("%s %s stopped by an unexpected error (error id %s)", label, pk, error_id, exc_info=exc)
    return JobFailure(message=unexpected_message(error_id), code=UNEXPECTED_CODE, expected=False, error_id=error_id)


def claim_job(model, pk, *, label: str, start_states: Iterable[str], running_state: str,
              fail: Callable[[Any, JobFailure], Any], on_start: Callable[[Any, Claim], None] | None = None,
              max_attempts: int | None = None, cause: str = CRASHED, action: str = RETRY_OR_ASK) -> Claim:
    """Start one delivery of the job `model(pk)` (fields `state` and `attempts`).

    From a state in `start_states` the job moves to `running_state` as attempt 1. Found already in
    `running_state`, it was started by a delivery whose worker died: attempt + 1, or, when `max_attempts`
    attempts were already made, `fail(job, failure)` ends it (in this transaction) with a reason its
    owner can act on. Any other state is finished: the job is returned and nothing runs. `on_start(job,
    claim)` writes the kind's own fields (and audit event) in the same transaction."""
    max_attempts = max_job_attempts() if max_attempts is None else max_attempts
    with transaction.atomic():
        job = model._default_manager.select_for_update().get(pk=pk)
        redelivered = job.state == running_state
        if not redelivered and job.state not in tuple(start_states):
            return Claim(job=job, run=False)
        if redelivered and job.attempts >= max_attempts:
            message = attempts_exhausted_message(label=label, attempts=job.attempts, cause=cause, action=action)
            logger.warning("%s %s: %s", label, pk, message)
            failure = JobFailure(message=message, code=TOO_MANY_ATTEMPTS_CODE, expected=True)
            return Claim(job=fail(job, failure), run=False, redelivered=True, failure=failure)
        job.state = running_state
        job.attempts = job.attempts + 1 if redelivered else 1
        job.save(update_fields=["state", "attempts"])
        claim = Claim(job=job, run=True, redelivered=redelivered)
        if on_start is not None:
            on_start(job, claim)
    return claim


def run_job(job, work: Callable[[], Any], *, label: str, fail: Callable[[Any, JobFailure], Any],
            expected: Iterable[type[BaseException]] = ()) -> Any:
    """Return `work()` for a job as `claim_job` returned it (in its running state). If the work raises,
    the row is locked again and, while it is still in that state, `fail(job, failure)` ends it (see
    `job_failure`); an error raised after the work had already ended the job (a cache refreshed after the
    commit) is logged and the job left as it is. Only `Exception`s are caught: a worker shutting down
    (`SystemExit`, `KeyboardInterrupt`) leaves the job to its next delivery."""
    running_state = job.state
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - every failure ends the job, with a message fit to show
        failure = job_failure(exc, label=label, pk=job.pk, expected=expected)
    with transaction.atomic():
        current = type(job)._default_manager.select_for_update().get(pk=job.pk)
        if current.state != running_state:
            logger.warning("%s %s had already ended (%s) when it failed; left as it is", label, job.pk, current.state)
            return current
        return fail(current, failure)
