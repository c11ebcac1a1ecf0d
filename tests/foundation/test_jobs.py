"""The shared long-job helper (`lineage.jobs`): claiming a delivery, the attempt cap, and what users are
told when a job fails. Fine-tune job rows stand in for any job (a `state` and an `attempts` field); the
job kinds' own tests check each kind end to end."""

import logging
import re

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from lineage import jobs
from models_registry.models import BaseModel, FineTuneJob, JobState

pytestmark = pytest.mark.django_db

SECRET = "password=hunter2 at /srv/lineage/private.key"


@pytest.fixture
def make_job(alice):
    base = BaseModel.objects.create(name="Base", slug="base", source_kind="package", source_ref="base",
                                    architecture="bert")

    def make(**fields):
        return FineTuneJob.objects.create(owner=alice, name="job", base_model=base, task="text-classification",
                                          hyperparameters={}, **fields)

    return make


class Recorder:
    """Stands in for a kind's hooks: records calls and writes the failure as a service would."""

    def __init__(self):
        self.started, self.failures, self.ran = [], [], 0

    def on_start(self, job, claim):
        self.started.append((job.attempts, claim.redelivered))

    def fail(self, job, failure):
        self.failures.append(failure)
        FineTuneJob.objects.filter(pk=job.pk).update(state=JobState.FAILED, error=failure.message)
        job.refresh_from_db()
        return job

    def work(self):
        self.ran += 1
        return "done"


def claim(job, recorder, **kwargs):
    return jobs.claim_job(FineTuneJob, job.pk, label="test job", start_states=(JobState.QUEUED,),
                          running_state=JobState.RUNNING, fail=recorder.fail, on_start=recorder.on_start, **kwargs)


def deliver(job, recorder, work=None, **kwargs):
    """One delivery as a task runs it: claim, then run the work if the claim says so."""
    result = claim(job, recorder, **kwargs)
    if not result.run:
        return result.job
    return jobs.run_job(result.job, work or recorder.work, label="test job", fail=recorder.fail)


def test_a_queued_job_is_claimed_as_attempt_one_and_runs(make_job):
    job, recorder = make_job(), Recorder()
    assert deliver(job, recorder) == "done"
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.attempts == 1
    assert recorder.started == [(1, False)] and recorder.ran == 1 and not recorder.failures


def test_a_job_redelivered_after_a_crash_runs_again_and_counts_the_attempt(make_job):
    job, recorder = make_job(state=JobState.RUNNING, attempts=1), Recorder()
    assert deliver(job, recorder) == "done"
    job.refresh_from_db()
    assert job.attempts == 2 and recorder.started == [(2, True)]


def test_a_job_redelivered_at_its_attempt_cap_fails_with_an_actionable_reason_and_does_not_run(make_job, settings,
                                                                                             caplog):
    settings.JOB_MAX_ATTEMPTS = 3
    job, recorder = make_job(state=JobState.RUNNING, attempts=3), Recorder()
    job = deliver(job, recorder)
    assert recorder.ran == 0 and recorder.started == []
    assert job.state == JobState.FAILED and job.attempts == 3
    assert job.error == ("The test job stopped after 3 attempts: the worker crashed each time. "
                         "Try it again, or contact an admin if it keeps failing.")
    [failure] = recorder.failures
    assert failure.code == jobs.TOO_MANY_ATTEMPTS_CODE and failure.expected
    assert "stopped after 3 attempts" in caplog.text
    # A further delivery of the failed job does nothing at all.
    assert deliver(job, recorder).state == JobState.FAILED and recorder.ran == 0 and len(recorder.failures) == 1


def test_the_cap_comes_from_the_setting_unless_the_kind_names_its_own(make_job, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    capped = deliver(make_job(state=JobState.RUNNING, attempts=2), Recorder())
    assert capped.state == JobState.FAILED and "after 2 attempts" in capped.error
    recorder = Recorder()
    assert deliver(make_job(state=JobState.RUNNING, attempts=2), recorder, max_attempts=5) == "done"
    assert recorder.started == [(3, True)]


def test_a_second_delivery_of_a_finished_job_does_nothing(make_job):
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        job, recorder = make_job(state=state, attempts=1, error="kept"), Recorder()
        result = claim(job, recorder)
        assert not result.run and result.failure is None
        job.refresh_from_db()
        assert (job.state, job.attempts, job.error) == (state, 1, "kept")
        assert recorder.started == [] and recorder.failures == []


def test_an_unexpected_error_shows_a_generic_message_with_an_id_and_logs_the_details(make_job, caplog):
    job, recorder = make_job(), Recorder()

    def crash():
        raise KeyError(SECRET)

    with caplog.at_level(logging.ERROR, logger="lineage.jobs"):
        job = deliver(job, recorder, work=crash)
    assert job.state == JobState.FAILED
    match = re.fullmatch(r"An unexpected error stopped this job \(error id ([0-9a-f]{12})\); "
                         r"the details are in the server logs\.", job.error)
    assert match, job.error
    assert "hunter2" not in job.error and "KeyError" not in job.error
    [failure] = recorder.failures
    assert failure.error_id == match.group(1) and failure.code == jobs.UNEXPECTED_CODE and not failure.expected
    [record] = [r for r in caplog.records if r.name == "lineage.jobs" and r.levelno == logging.ERROR]
    assert match.group(1) in record.getMessage() and record.exc_info[0] is KeyError
    assert "hunter2" in caplog.text  # the traceback, with the text, is in the logs only


def test_each_unexpected_error_gets_its_own_id():
    ids = set()
    for _ in range(3):
        ids.add(jobs.job_failure(RuntimeError(SECRET), label="test job", pk=1).error_id)
    assert len(ids) == 3


def test_an_expected_error_is_shown_as_it_is(make_job, caplog):
    job, recorder = make_job(), Recorder()
    message = "The file has no data rows. Add at least one row under the header and upload it again."

    def refuse():
        raise jobs.ExpectedJobError(message, code="no_rows")

    job = deliver(job, recorder, work=refuse)
    assert job.state == JobState.FAILED and job.error == message
    assert recorder.failures[0].code == "no_rows" and recorder.failures[0].expected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_domain_errors_listed_as_expected_keep_their_message_and_code():
    class DomainError(Exception):
        def __init__(self, code, message):
            super().__init__(f"{code}: {message}")
            self.code, self.message = code, message

    failure = jobs.job_failure(DomainError("gzip_ratio", "The file expands too much."), label="test job", pk=1,
                               expected=(DomainError,))
    assert (failure.message, failure.code, failure.expected) == ("The file expands too much.", "gzip_ratio", True)
    plain = jobs.job_failure(ValueError("Lower the batch size."), label="test job", pk=1, expected=(ValueError,))
    assert (plain.message, plain.code) == ("Lower the batch size.", "failed")
    # Not listed: the same error is unexpected.
    assert jobs.job_failure(ValueError("Lower the batch size."), label="test job", pk=1).code == jobs.UNEXPECTED_CODE


def test_a_job_past_its_time_limit_says_so(make_job):
    job, recorder = make_job(), Recorder()

    def too_long():
        raise SoftTimeLimitExceeded()

    job = deliver(job, recorder, work=too_long)
    assert job.state == JobState.FAILED and "ran past its time limit" in job.error
    assert recorder.failures[0].code == jobs.TIME_LIMIT_CODE


def test_an_error_after_the_work_ended_the_job_leaves_it_as_it_ended(make_job, caplog):
    job, recorder = make_job(), Recorder()

    def finish_then_crash():
        FineTuneJob.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
        raise RuntimeError("cache refresh failed")

    job = deliver(job, recorder, work=finish_then_crash)
    assert job.state == JobState.SUCCEEDED and job.error == "" and recorder.failures == []
    assert "error id" in caplog.text  # still logged, with its id


def test_a_worker_shutting_down_is_not_turned_into_a_failure(make_job):
    job, recorder = make_job(), Recorder()

    def shutdown():
        raise SystemExit(1)

    with pytest.raises(SystemExit):
        deliver(job, recorder, work=shutdown)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and recorder.failures == []  # left to the next delivery
