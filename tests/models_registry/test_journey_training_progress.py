"""Issue #22, item 10: the job page said "Step 9 of 9, epoch 2" while the log said "epoch 3/3"; epochs
were missing from the log (an epoch shorter than the progress interval was never logged) or repeated
(one line per progress report); "cancelled" was logged twice.

Now steps and epochs are 1-based everywhere (the epoch is that of the step just finished), each epoch
is logged once when it ends, and a cancellation is logged once. Real MiniLM fine-tunes through the
service, with the engine's progress events recorded on their way to the database.
"""

import html
import re

import pytest

from models_registry import services
from models_registry.models import FineTuneJob, JobState

pytestmark = pytest.mark.django_db

# 12 rows, a quarter held out (2 per label): 8 training rows.
SETTINGS = {"max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}


@pytest.fixture(autouse=True)
def _no_index_build(settings):
    settings.ATTRIBUTION_BUILD_ON_REGISTER = False


@pytest.fixture
def recorded(monkeypatch):
    """Run the real engine, recording each progress event with the job's row as the page reads it right
    after the service stored the event; `cancel_after_polls` asks to cancel (as the owner's button does)
    once the engine has polled that many times."""
    from models_registry.training import runner

    seen = {"events": [], "cancel_after_polls": None}
    real = runner.run_training
    monkeypatch.setattr(services.fine_tune_runs, "CANCEL_POLL_S", 0.0)

    def run(spec, rows, work_dir, on_progress=None, should_cancel=None, **kwargs):
        job_id = FineTuneJob.objects.latest("pk").pk
        polls = [0]

        def progress(event):
            on_progress(event)
            job = FineTuneJob.objects.get(pk=job_id)
            seen["events"].append((event, job.step, job.epoch))

        def cancel():
            polls[0] += 1
            if seen["cancel_after_polls"] is not None and polls[0] > seen["cancel_after_polls"]:
                FineTuneJob.objects.filter(pk=job_id).update(cancel_requested=True)
            return should_cancel()

        return real(spec, rows, work_dir, progress, cancel, **kwargs)

    monkeypatch.setattr(services.training, "run_training", run, raising=False)
    return seen


def run_job(capture, alice, version, **params):
    with capture(execute=True):
        job = services.fine_tune_create(owner=alice, name="progress", base_model=services.base_model_ensure_default(),
                                        datanet_versions=[version], **SETTINGS, **params)
    job.refresh_from_db()
    return job


def job_page(client, alice, job) -> str:
    client.force_login(alice)
    return re.sub(r"\s+", " ", html.unescape(client.get(job.get_absolute_url()).content.decode()))


def log_lines(job) -> list[str]:
    return [line.split(" ", 1)[1] for line in job.log_tail.splitlines()]


def test_page_and_log_agree_and_each_epoch_is_logged_once(intent_rows, alice, publish, client, recorded,
                                                          django_capture_on_commit_callbacks):
    # 3 epochs of 2 steps: shorter than the 5-step progress interval (epoch 1 used to be missing).
    version = publish(alice, intent_rows(1))
    job = run_job(django_capture_on_commit_callbacks, alice, version, epochs=3, batch_size=4)
    assert job.state == JobState.SUCCEEDED, job.error
    assert (job.step, job.total_steps, job.epoch) == (6, 6, 3)
    assert "Step 6 of 6, epoch 3 of 3" in job_page(client, alice, job)
    epochs = [line.split(" done")[0] for line in log_lines(job) if line.startswith("epoch")]
    assert epochs == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert log_lines(job).count("starting") == 1 and log_lines(job).count("done") == 1
    # Every stored report: 1-based, the epoch of the step just finished, the same in the job row.
    for event, step, epoch in recorded["events"]:
        assert (event.total_epochs, step) == (3, event.step)
        assert epoch == event.epoch == max(1, -(-event.step // 2)), event
        if event.message.startswith("epoch "):
            assert event.message.startswith(f"epoch {event.epoch}/3 done") and event.step == 2 * event.epoch


def test_long_epochs_report_progress_in_between_without_repeating_the_epoch(intent_rows, alice, publish, recorded,
                                                                            django_capture_on_commit_callbacks):
    # 2 epochs of 8 steps: progress reports at steps 5, 10 and 15 fall inside epochs.
    version = publish(alice, intent_rows(1))
    job = run_job(django_capture_on_commit_callbacks, alice, version, epochs=2, batch_size=1)
    assert job.state == JobState.SUCCEEDED, job.error
    steps = [(event.step, event.epoch, event.message.split(":")[0]) for event, _, _ in recorded["events"]
             if 0 < event.step < 16 or event.message.startswith("epoch")]
    assert steps == [(5, 1, ""), (8, 1, "epoch 1/2 done"), (10, 2, ""), (15, 2, ""), (16, 2, "epoch 2/2 done")]
    assert [line.split(":")[0] for line in log_lines(job) if line.startswith("epoch")] == ["epoch 1/2 done",
                                                                                           "epoch 2/2 done"]
    assert not any(line == "" or line.isspace() for line in log_lines(job))


def test_a_cancelled_job_logs_it_once_and_shows_where_it_stopped(intent_rows, alice, publish, client, recorded,
                                                                 django_capture_on_commit_callbacks):
    recorded["cancel_after_polls"] = 3  # steps 1-3 run; the 4th poll sees the request
    version = publish(alice, intent_rows(1))
    job = run_job(django_capture_on_commit_callbacks, alice, version, epochs=3, batch_size=4)
    assert job.state == JobState.CANCELLED and not hasattr(job, "model_version")
    cancelled = [line for line in log_lines(job) if "cancel" in line]
    assert cancelled == ["cancelled by the owner after step 3 of 6; the checkpoint is kept"], job.log_tail
    assert (job.step, job.epoch) == (3, 2)
    page = job_page(client, alice, job)
    assert "Step 3 of 6, epoch 2 of 3" in page and "Cancelled" in page
    assert [line.split(" done")[0] for line in log_lines(job) if line.startswith("epoch")] == ["epoch 1/3"]


def test_a_queued_job_shows_epoch_one_not_zero(intent_rows, alice, publish, client,
                                               django_capture_on_commit_callbacks):
    version = publish(alice, intent_rows(1))
    with django_capture_on_commit_callbacks(execute=False):
        job = services.fine_tune_create(owner=alice, name="waiting", base_model=services.base_model_ensure_default(),
                                        datanet_versions=[version], epochs=3, **SETTINGS)
    assert "Step 0 of ?, epoch 1 of 3" in job_page(client, alice, job)
