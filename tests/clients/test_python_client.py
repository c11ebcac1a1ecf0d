"""Issue #18, item 2: the Python SDK (clients/python, `lineage_client`) against a live server.

The whole flow through the SDK: create a Datanet, upload a CSV with a progress bar, wait for validation, read
the refused row, (the curator accepts the rows through the service), publish, download the version checked
against its hashes, fine-tune MiniLM, wait with a progress bar, read the card, price in OPEN, deploy, chat,
read the receipt and the earnings. Then waiting (backoff, Ctrl-C, timeout, failures), downloads that do not
match their hashes, and errors in the API's shape.
"""

import csv
import hashlib
import json
import zipfile

import pytest
from lineage_client import (
    AuthenticationError,
    Backoff,
    BadRequestError,
    ConflictError,
    IntegrityError,
    InvalidAmountError,
    JobFailedError,
    Lineage,
    LineageConnectionError,
    NotFoundError,
    PermissionDeniedError,
    WaitInterrupted,
    WaitTimeoutError,
)
from tqdm import tqdm

from accounts.models import AuditEvent
from models_registry.models import FineTuneJob, ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)

PRICE_OPEN, PRICE_UNITS, GRANT = "0.001", 10**15, 10**16
# A few MiniLM steps on two cores; a quarter held out.
FAST = {"epochs": 2, "batch_size": 4, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}


@pytest.mark.slow
def test_the_whole_flow_through_the_sdk(alice, charlie, staff, lineage_for, intents_csv, accept_all, sync, base_model,
                                        capsys, tmp_path):
    from rewards import services as rewards_services

    tmp_path = tmp_path / "downloads"
    tmp_path.mkdir()
    lineage = lineage_for(alice)
    assert lineage.me().scopes == ["contribute", "infer", "read", "train"]
    datanet = lineage.datanets.create("Support intents", task_type="text-classification",
                                      labels=["billing", "shipping"])
    assert (datanet.owner, datanet.label_set, datanet.visibility) == ("alice", ["billing", "shipping"], "public")
    capsys.readouterr()

    # Upload: streamed, a progress bar over the file's bytes; the server answers 202 with the contribution.
    contribution = lineage.datanets.upload(datanet.slug, intents_csv)
    size = intents_csv.stat().st_size
    upload_bar = capsys.readouterr().err
    shown = tqdm.format_sizeof(size, divisor=1024)  # "1.12k"
    assert "upload intents.csv: 100%" in upload_bar and f"{shown}/{shown}" in upload_bar
    assert contribution.file_name == "intents.csv" and contribution.size_bytes == size
    assert contribution.file_sha256 == hashlib.sha256(intents_csv.read_bytes()).hexdigest()

    validated = lineage.datanets.wait(datanet.slug, contribution.id)
    assert validated.state == "in_review" and validated.finished
    assert (validated.counts["total"], validated.counts["accepted"], validated.counts["rejected"]) == (25, 24, 1)
    assert f"validate #{contribution.id}: 100%" in capsys.readouterr().err

    (refused,) = lineage.datanets.row_errors(datanet.slug, contribution.id)
    assert (refused.row, refused.line, refused.code) == (25, 26, "unknown_label")
    assert refused.message.startswith("Line 26") and "refunds" in refused.message
    errors_csv = lineage.datanets.download_errors_csv(datanet.slug, contribution.id, tmp_path / "refused.csv")
    table = list(csv.reader(errors_csv.path.open(encoding="utf-8")))
    assert table[1][:3] == ["25", "26", "unknown_label"] and "please send me a sticker" in table[1]

    assert accept_all(datanet.slug) == 24  # the curator's review, through the service
    version = lineage.datanets.publish(datanet.slug, notes="first cut")
    assert (version.number, version.row_count, version.contributor_count, version.ref) == (
        1, 24, 1, f"{datanet.slug}:1")

    # Downloads are kept only once checked against the hashes the API gives.
    rows = lineage.datanets.download(datanet.slug, 1, tmp_path, format="jsonl")
    assert rows.path == tmp_path / f"{datanet.slug}-v1.jsonl" and "rows_sha256" in rows.verified
    lines = [json.loads(line) for line in rows.path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 24 and {line["label"] for line in lines} == {"billing", "shipping"}
    parquet = lineage.datanets.download(datanet.slug, 1, tmp_path / "v1.parquet", format="parquet")
    assert parquet.sha256 == hashlib.sha256(parquet.path.read_bytes()).hexdigest()
    assert parquet.sha256 == version.manifest["files"]["data.parquet"]["sha256"]
    as_csv = lineage.datanets.download(datanet.slug, 1, tmp_path / "v1.csv", format="csv")
    assert "row count" in as_csv.verified and len(list(csv.reader(as_csv.path.open()))) == 25
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial files left

    # Fine-tune: launched from a spec, followed with a progress bar over its steps.
    job = lineage.fine_tunes.launch(datanet_versions=[version], name="Support intents", **FAST)
    assert job.datanet_versions == [f"{datanet.slug}:1"] and job.hyperparameters["epochs"] == 2
    capsys.readouterr()
    trained = lineage.fine_tunes.wait(job.id)
    assert trained.state == "succeeded" and trained.step == trained.total_steps > 0 and trained.epoch == 2
    assert trained.model_version and trained.loss_curve[-1][0] == trained.total_steps
    bar = capsys.readouterr().err
    assert f"fine-tune {job.id}: 100%" in bar and f"{trained.total_steps}/{trained.total_steps}" in bar
    assert f"succeeded, epoch 2/2, loss {trained.last_loss:.4f}" in bar

    slug = trained.model_version
    model = lineage.models.get(slug)
    assert model.deployed is False and model.label_names == ["billing", "shipping"]
    (trained_on,) = model.lineage["datanets"]
    assert (trained_on["datanet"], trained_on["version"], trained_on["version_hash"]) == (
        datanet.slug, 1, version.manifest_hash)
    assert model.card["trained_rows"] + model.card["held_out_rows"] == 24

    priced = lineage.models.set_price(slug, PRICE_OPEN)  # OPEN in, base units on the wire
    assert (priced.price_per_inference, priced.price_open) == (PRICE_UNITS, PRICE_OPEN)
    assert ModelVersion.objects.get(slug=slug).price_per_inference == PRICE_UNITS
    assert lineage.models.deploy(slug).deployed is True
    assert sync().loaded == [slug]

    adapter = lineage.models.download_adapter(slug, tmp_path)
    assert adapter.path == tmp_path / f"{slug}-adapter.zip" and "X-Content-SHA256" in adapter.verified
    assert "adapter_config.json" in zipfile.ZipFile(adapter.path).namelist()

    # Someone else asks the model; the answer comes with its receipt, and the fee is earned.
    rewards_services.credit_grant(actor=staff, user=charlie, amount=GRANT, reason="tests")
    asker = lineage_for(charlie, "read", "infer")
    answer = asker.chat(slug, "refund my payment please")
    assert answer.text == answer.label == "billing" and answer.fee == PRICE_UNITS
    assert set(answer.probabilities) == {"billing", "shipping"} and answer.receipt_id and answer.inference_id
    receipt = asker.receipts.get(answer.receipt_id)
    assert (receipt.receipt_id, receipt.model, receipt.model_version_hash) == (
        answer.receipt_id, slug, model.version_hash)
    assert set(receipt.contributor_shares_ppm) <= {str(alice.pk)}

    rewards_services.fees_settle_pending()  # the beat task's batch (eager tasks may have booked it already)
    earnings = lineage.earnings.list()
    assert earnings.items and {item.inference_id for item in earnings.items} == {answer.inference_id}
    assert "owner" in {item.role for item in earnings.items}
    assert earnings.totals["earned"] == sum(item.amount for item in earnings.items) > 0

    assert lineage.models.undeploy(slug).deployed is False
    actions = set(AuditEvent.objects.filter(actor=alice).values_list("action", flat=True))
    assert {"datanet.version_publish", "fine_tune.create", "model_version.update", "model_version.deploy"} <= actions


# --- Waiting: backoff, progress, failures, Ctrl-C and timeouts against a job the test moves along -----------


@pytest.fixture
def queued_job(alice, base_model):
    """A fine-tune row with no worker: the test plays the worker between polls."""
    return FineTuneJob.objects.create(owner=alice, name="played", base_model=base_model, task="text-classification",
                                      label_names=["billing", "shipping"], hyperparameters={"epochs": 2})


def test_wait_polls_with_backoff_draws_step_epoch_loss_and_reports_a_failure(alice, lineage_for, queued_job, capsys):
    updates = iter([
        {},  # nothing changes: the next poll waits longer
        {"state": "running", "step": 2, "total_steps": 6, "epoch": 1,
         "loss_curve": [[1, 0.71], [2, 0.6]]},
        {"step": 4, "epoch": 2, "loss_curve": [[1, 0.71], [2, 0.6], [3, 0.52], [4, 0.4321]]},
        {"state": "failed", "error": "The worker ran out of memory: lower the batch size."},
    ])
    delays = []

    def worker_moves_on(delay):
        delays.append(delay)
        FineTuneJob.objects.filter(pk=queued_job.pk).update(**next(updates))

    lineage = lineage_for(alice, "read", backoff=Backoff(initial=0.5, maximum=2.0, factor=2.0), sleep=worker_moves_on)
    with pytest.raises(JobFailedError) as failed:
        lineage.fine_tunes.wait(queued_job.pk)
    assert delays == [0.5, 1.0, 0.5, 0.5]  # backed off while nothing changed, back to 0.5 once it did
    assert "ran out of memory" in str(failed.value) and failed.value.result.state == "failed"
    assert failed.value.result.step == 4
    bar = capsys.readouterr().err
    assert "2/6" in bar and "running, epoch 1/2, loss 0.6000" in bar and "4/6" in bar and "loss 0.4321" in bar


def test_ctrl_c_stops_only_the_waiting(alice, lineage_for, queued_job):
    def interrupted(delay):
        raise KeyboardInterrupt

    lineage = lineage_for(alice, "read", "train", sleep=interrupted)
    with pytest.raises(WaitInterrupted) as stop:
        lineage.fine_tunes.wait(queued_job.pk, progress=False)
    assert isinstance(stop.value, KeyboardInterrupt) and stop.value.result.state == "queued"
    assert f"fine-tune {queued_job.pk} is queued" in stop.value.message and "nothing was changed" in stop.value.message
    queued_job.refresh_from_db()
    assert queued_job.state == "queued" and not queued_job.cancel_requested  # the job goes on
    assert lineage.fine_tunes.get(queued_job.pk).state == "queued"  # and the client still works


def test_a_wait_that_runs_out_of_time_leaves_the_job_alone(alice, lineage_for, queued_job):
    lineage = lineage_for(alice, "read", sleep=lambda delay: None)
    with pytest.raises(WaitTimeoutError) as late:
        lineage.fine_tunes.wait(queued_job.pk, timeout=0, progress=False)
    assert "Stopped waiting after 0 s" in str(late.value) and late.value.result.state == "queued"


def test_cancel_and_resume_answer_in_the_api_error_shape(alice, charlie, lineage_for, queued_job):
    lineage = lineage_for(alice, "read", "train")
    cancelled = lineage.fine_tunes.cancel(queued_job.pk)
    assert cancelled.state == "cancelled" and cancelled.resumable
    with pytest.raises(ConflictError) as again:
        lineage.fine_tunes.cancel(queued_job.pk)
    assert (again.value.status, again.value.code) == (409, "not_cancellable") and "is cancelled" in again.value.detail
    with pytest.raises(NotFoundError) as other:
        lineage_for(charlie, "read", "train").fine_tunes.resume(queued_job.pk)
    assert str(other.value) == f"No fine-tune {queued_job.pk} that this API key can see."
    FineTuneJob.objects.filter(pk=queued_job.pk).update(state="succeeded")
    with pytest.raises(ConflictError) as done:
        lineage.fine_tunes.resume(queued_job.pk)
    assert done.value.code == "not_resumable" and "only a cancelled or failed one" in done.value.detail


# --- Downloads that do not match their hashes keep nothing ---------------------------------------------------


def test_a_download_that_does_not_match_its_hashes_is_not_kept(alice, lineage_for, publish, intent_rows, tmp_path):
    from django.core.files.storage import default_storage

    from datanets.models import DatanetVersion

    version = publish(alice, intent_rows(1))
    lineage = lineage_for(alice, "read")
    slug = version.datanet.slug
    tmp_path = tmp_path / "downloads"
    tmp_path.mkdir()
    good = lineage.datanets.download(slug, 1, tmp_path / "good.parquet", format="parquet", progress=False)
    assert good.size == version.manifest["files"]["data.parquet"]["bytes"]

    # The stored file changed under the version (a bad disk, an edit): its bytes no longer match the manifest.
    stored = default_storage.path(f"{version.storage_prefix}/data.parquet")
    with open(stored, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(IntegrityError) as corrupt:
        lineage.datanets.download(slug, 1, tmp_path / "bad.parquet", format="parquet", progress=False)
    assert "nothing was kept" in str(corrupt.value)

    # A manifest that is not the one the version was published with is refused before any download.
    edited = dict(version.manifest, row_count=999)
    DatanetVersion.objects.filter(pk=version.pk).update(manifest=edited)
    with pytest.raises(IntegrityError) as forged:
        lineage.datanets.download(slug, 1, tmp_path / "bad.jsonl", format="jsonl", progress=False)
    assert "not the manifest this version was published with" in str(forged.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.parquet"]


# --- Errors: the server's own sentence, in one hierarchy --------------------------------------------------------


def test_errors_carry_the_api_error_shape(alice, charlie, lineage_for, live_server, publish, intent_rows, tmp_path):
    with pytest.raises(AuthenticationError) as wrong_key:
        Lineage(live_server.url, "lin_nope_nope").datanets.list()
    assert (wrong_key.value.status, wrong_key.value.code) == (401, "invalid_api_key")
    assert str(wrong_key.value) == "This API key is not valid or has been revoked."

    reader = lineage_for(alice, "read")
    with pytest.raises(PermissionDeniedError) as scope:
        reader.datanets.create("Nope", task_type="text-classification", labels=["a", "b"])
    assert scope.value.status == 403 and "'contribute' scope" in scope.value.detail

    with pytest.raises(NotFoundError) as unknown:
        reader.datanets.get("no-such-datanet")
    assert str(unknown.value) == "No Datanet “no-such-datanet” that this API key can see."

    writer = lineage_for(alice, "read", "contribute")
    with pytest.raises(BadRequestError) as bad:
        writer.datanets.create("Bad", task_type="poetry")
    assert bad.value.status == 400 and "task_type" in bad.value.fields and "task_type:" in str(bad.value)
    with pytest.raises(BadRequestError) as missing:
        writer.datanets.upload("whatever", tmp_path / "absent.csv")
    assert missing.value.status is None and "No file at" in str(missing.value)

    # The OpenAI-shaped errors of /v1 land in the same attributes.
    with pytest.raises(NotFoundError) as no_model:
        lineage_for(charlie, "infer").chat("no-such-model", "hello")
    assert (no_model.value.code, no_model.value.status) == ("model_not_found", 404)
    assert "does not exist" in no_model.value.detail and "model" in no_model.value.fields

    # Unknown settings, and prices that are not amounts, are refused before any request.
    version = publish(alice, intent_rows(1))
    with pytest.raises(BadRequestError) as unknown_setting:
        lineage_for(alice, "read", "train").fine_tunes.launch(datanet_versions=[f"{version.datanet.slug}:1"], epoch=3)
    assert "Unknown setting(s): epoch" in str(unknown_setting.value) and not FineTuneJob.objects.exists()
    with pytest.raises(InvalidAmountError):
        lineage_for(alice, "train").models.set_price("any-model", "abc")

    with pytest.raises(LineageConnectionError) as down:
        Lineage("http://127.0.0.1:9", "lin_a_b", timeout=5).me()
    assert "Could not reach the server at http://127.0.0.1:9" in str(down.value)


def test_upload_keeps_the_file_name_and_a_refused_file_is_a_job_failure(alice, lineage_for, tmp_path):
    lineage = lineage_for(alice, "read", "contribute")
    datanet = lineage.datanets.create("Intents", task_type="text-classification", labels=["billing", "shipping"])
    named = tmp_path / "données d'été \"v2\".csv"
    named.write_text("text,label\nrefund my payment,billing\nwhere is my parcel,shipping\n", encoding="utf-8")
    accepted = lineage.datanets.upload(datanet.slug, named, wait=True, progress=False)
    assert accepted.file_name == "données d'été %22v2%22.csv" and accepted.counts["accepted"] == 2

    wrong_columns = tmp_path / "wrong.csv"
    wrong_columns.write_text("question,answer\nhow,so\n", encoding="utf-8")
    with pytest.raises(JobFailedError) as refused:
        lineage.datanets.upload(datanet.slug, wrong_columns, wait=True, progress=False)
    failed = refused.value.result
    assert failed.state == "failed" and failed.error_code == refused.value.code and failed.error_message
    assert str(refused.value) == f"Contribution {failed.id} failed validation: {failed.error_message}"
