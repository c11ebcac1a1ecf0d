"""The ModelFactory REST API (issue #18, item 1) with real API keys, services, the (eager) training task and
real MiniLM fine-tunes: launch, watch, cancel and resume fine-tunes; read, price, deploy, download and
undeploy model versions; and every bad input answered in the API's error shape.

Roles, the cast of tests/conftest.py: alice trains on her own Datanets, dora contributes rows to them, bob
curates them, charlie is a stranger.
"""

import hashlib
import io
import zipfile

import pytest

from accounts.models import AuditEvent
from models_registry import services
from models_registry.forms import FineTuneForm
from models_registry.models import FineTuneJob, JobState, ModelVersion
from models_registry.serializers import FineTuneCreateSerializer

pytestmark = pytest.mark.django_db

JOBS, MODELS = "/api/v1/fine-tunes/", "/api/v1/models/"
# 12 rows, a quarter held out: a few seconds of MiniLM training on two cores.
FAST = {"epochs": 2, "batch_size": 4, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}


def spec(*versions, **overrides):
    return {"name": "Support intents", "base_model": "all-minilm-l6-v2",
            "datanet_versions": [{"datanet": v.datanet.slug, "number": v.number} for v in versions],
            **FAST, **overrides}


def error(response, status_code):
    assert response.status_code == status_code, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "fields"} and body["detail"], body
    return body


@pytest.fixture(autouse=True)
def base_model(db):
    return services.base_model_ensure_default()


@pytest.fixture
def trainer(alice, key_client):
    return key_client(alice, "read", "train")


@pytest.fixture
def launch(trainer, django_capture_on_commit_callbacks):
    """POST a fine-tune and let its task run as it would after the request commits (`run=False`: never)."""

    def post(body, *, client=None, run=True):
        with django_capture_on_commit_callbacks(execute=run):
            return (client or trainer).post(JOBS, body, format="json")

    return post


@pytest.fixture
def trained(alice, publish, intent_rows, django_capture_on_commit_callbacks, settings):
    """A model version alice trained through the service (no attribution index: tests that need one build it)."""
    settings.ATTRIBUTION_BUILD_ON_REGISTER = False
    version = publish(alice, intent_rows(1))
    with django_capture_on_commit_callbacks(execute=True):
        job = services.fine_tune_create(owner=alice, name="Intents", base_model=services.base_model_ensure_default(),
                                        datanet_versions=[version], **FAST)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    return job.model_version


# --- The whole flow ------------------------------------------------------------------------------------


def test_launch_train_read_deploy_price_download_undeploy(alice, dora, publish, intent_rows, trainer, launch,
                                                          api_client):
    version = publish(alice, intent_rows(1), contributor=dora)
    response = launch(spec(version))
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["state"] == JobState.QUEUED and response["Location"] == created["url"]
    assert created["hyperparameters"]["epochs"] == 2 and created["hyperparameters"]["lora_r"] == 8  # form default
    assert created["datanet_versions"] == [{"datanet": version.datanet.slug, "number": 1,
                                            "manifest_hash": version.manifest_hash, "row_count": 12}]

    job = trainer.get(created["url"]).json()  # the eager task ran when the request committed
    assert job["state"] == JobState.SUCCEEDED, job["error"]
    assert job["progress_percent"] == 100 and job["step"] == job["total_steps"] > 0
    assert job["epoch"] == job["total_epochs"] == 2
    steps = [step for step, _ in job["loss_curve"]]
    assert len(steps) >= 2 and steps == sorted(set(steps)) and all(loss > 0 for _, loss in job["loss_curve"])
    assert job["error"] == "" and any(line.endswith("done") for line in job["log"])
    slug = job["model_version"]
    assert slug and trainer.get(JOBS).json()["results"][0]["id"] == created["id"]

    detail = trainer.get(f"{MODELS}{slug}/").json()
    assert detail["deployed"] is False and detail["price_per_inference"] == "0" and detail["label_names"] == [
        "billing", "shipping"]
    assert detail["card"]["trained_rows"] + detail["card"]["held_out_rows"] == 12
    assert detail["card"]["trained_contributors"] == 1 and detail["card"]["metrics"]
    assert detail["lineage"]["rows"] == 12 and detail["lineage"]["datanets"] == [{
        "visible": True, "datanet": version.datanet.slug, "name": version.datanet.name, "version": 1,
        "version_hash": version.manifest_hash, "licence": version.datanet.licence, "rows": 12, "contributors": 1}]
    assert detail["job"] == created["url"]
    assert detail["attribution_status"] == "ready"  # built on registration, so a paid price may follow
    assert api_client.get(f"{MODELS}{slug}/").status_code == 404  # not deployed: alice's alone

    deployed = trainer.post(f"{MODELS}{slug}/deploy/")
    assert deployed.status_code == 200 and deployed.json()["deployed"] is True
    public = api_client.get(f"{MODELS}{slug}/").json()  # deployed: anyone reads the card, not the job
    assert public["job"] is None and public["lineage"]["datanets"][0]["name"] == version.datanet.name

    priced = trainer.patch(f"{MODELS}{slug}/", {"price_per_inference": "50000000000000000"}, format="json")
    assert priced.status_code == 200, priced.json()
    assert priced.json()["price_per_inference"] == "50000000000000000" and priced.json()["price_open"] == "0.05"
    assert str(ModelVersion.objects.get(slug=slug).price_per_inference) == "50000000000000000"

    download = trainer.get(f"{MODELS}{slug}/adapter/", HTTP_ACCEPT="application/zip")
    assert download.status_code == 200 and download.streaming and download["Content-Type"] == "application/zip"
    data = b"".join(download.streaming_content)
    digest = hashlib.sha256(data)
    assert download["X-Content-SHA256"] == digest.hexdigest() and download["ETag"] == f'"{digest.hexdigest()}"'
    assert download["Repr-Digest"].startswith("sha-256=:") and download["X-Model-Version-Hash"] == job_hash(slug)
    assert f'filename="{slug}-adapter.zip"' in download["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "adapter_config.json" in names and any(n.startswith("adapter_model") for n in names)
    again = b"".join(trainer.get(f"{MODELS}{slug}/adapter/").streaming_content)
    assert again == data  # the same model gives the same bytes

    undeployed = trainer.post(f"{MODELS}{slug}/undeploy/")
    assert undeployed.status_code == 200 and undeployed.json()["deployed"] is False
    assert api_client.get(f"{MODELS}{slug}/").status_code == 404
    actions = set(AuditEvent.objects.filter(actor=alice).values_list("action", flat=True))
    assert {"fine_tune.create", "model_version.deploy", "model_version.update", "model_version.undeploy"} <= actions


def job_hash(slug):
    return ModelVersion.objects.get(slug=slug).version_hash


# --- Launching: bad input --------------------------------------------------------------------------------


def test_the_api_takes_every_setting_of_the_page_form():
    form_fields = set(FineTuneForm.base_fields)
    assert form_fields == set(FineTuneCreateSerializer().fields)
    for name in ("lora_r", "epochs", "max_seq_length", "eval_fraction", "learning_rate"):
        form_field, api_field = FineTuneForm.base_fields[name], FineTuneCreateSerializer().fields[name]
        assert (api_field.min_value, api_field.max_value) == (form_field.min_value, form_field.max_value)


def test_an_unknown_base_is_refused_with_the_offered_ones(alice, publish, intent_rows, launch):
    version = publish(alice, intent_rows(1))
    body = error(launch(spec(version, base_model="gpt-17")), 400)
    assert body["code"] == "invalid"
    assert body["fields"]["base_model"] == ["No base model “gpt-17” is offered. Offered: all-minilm-l6-v2 "
                                            "(text-classification)."]
    assert not FineTuneJob.objects.exists()


def test_overlapping_versions_of_one_datanet_are_refused_with_the_forms_reason(alice, publish, intent_rows, launch,
                                                                               django_capture_on_commit_callbacks):
    from datanets import services as datanet_services

    v1 = publish(alice, intent_rows(1))
    with django_capture_on_commit_callbacks(execute=True):
        datanet_services.contribution_create_from_rows(datanet=v1.datanet, contributor=alice,
                                                       rows=[{"text": "a brand new parcel question", "label": "shipping"}])
    datanet_services.records_review(datanet=v1.datanet, reviewer=alice, decision="accept",
                                    record_ids=v1.datanet.records.filter(status="pending").values_list("pk", flat=True))
    v2 = datanet_services.version_publish(datanet=v1.datanet, actor=alice)
    body = error(launch(spec(v1, v2)), 400)
    [message] = body["fields"]["datanet_versions"]
    assert "You chose v1 and v2 of “Intents”" in message and "Choose one version" in message
    assert message in body["detail"] and not FineTuneJob.objects.exists()


def test_a_datanet_the_caller_may_not_read_reads_as_missing(alice, charlie, publish, intent_rows, key_client, launch):
    private = publish(alice, intent_rows(1), visibility="private", name="Secret intents")
    charlie_key = key_client(charlie, "train")
    hidden = error(launch(spec(private), client=charlie_key), 400)
    missing = error(launch(spec(private, datanet_versions=[{"datanet": "no-such-datanet", "number": 1}]),
                           client=charlie_key), 400)
    assert hidden["fields"]["datanet_versions"] == [f"No Datanet “{private.datanet.slug}” that you can see."]
    assert missing["fields"]["datanet_versions"] == ["No Datanet “no-such-datanet” that you can see."]
    assert "Secret intents" not in str(hidden)
    # Alice's own unknown version number names her latest.
    body = error(launch(spec(private, datanet_versions=[{"datanet": private.datanet.slug, "number": 7}])), 400)
    assert body["fields"]["datanet_versions"] == ["“Secret intents” has no version 7 (its latest is v1)."]


def test_a_datanet_that_needs_approval_says_how_to_ask(alice, charlie, publish, intent_rows, key_client, launch):
    from datanets import services as datanet_services

    version = publish(alice, intent_rows(1))
    datanet_services.datanet_update(datanet=version.datanet, actor=alice, training_access="approval")
    body = error(launch(spec(version), client=key_client(charlie, "train")), 400)
    assert body["fields"]["datanet_versions"] == [
        f"You may not train on “Intents” v1: ask its owner for training access "
        f"(POST /api/v1/datanets/{version.datanet.slug}/access-requests/, scope train)."]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"lora_r": 0}, "lora_r", "greater than or equal to 1"),
    ({"lora_r": 1000}, "lora_r", "less than or equal to 256"),
    ({"epochs": "many"}, "epochs", "valid integer"),
    ({"eval_fraction": 0.9}, "eval_fraction", "less than or equal to 0.5"),
    ({"lora_dropout": "NaN"}, "lora_dropout", ""),
    ({"lora_target_modules": ["query,value"]}, "lora_target_modules", "no commas"),
    ({"datanet_versions": []}, "datanet_versions", "Choose at least one Datanet version to train on."),
    ({"datanet_versions": [{"datanet": "x"}]}, "datanet_versions", "Item 1: number: This field is required."),
    ({"name": ""}, "name", "blank"),
    ({"base_model": None}, "base_model", "null"),
])
def test_bad_settings_are_refused_field_by_field(alice, publish, intent_rows, launch, change, field, message):
    version = publish(alice, intent_rows(1))
    body = error(launch({**spec(version), **change}), 400)
    assert field in body["fields"] and message in str(body["fields"][field]), body
    assert not FineTuneJob.objects.exists()


ACCEPTED_LAUNCH_FIELDS = ("name, base_model, datanet_versions, lora_r, lora_alpha, lora_dropout, lora_target_modules, "
                          "learning_rate, epochs, batch_size, max_seq_length, eval_fraction, seed")


def test_unknown_fields_are_refused_by_name_with_the_accepted_ones(alice, publish, intent_rows, launch):
    version = publish(alice, intent_rows(1))
    # A typo of a setting (`epoch` for `epochs`) used to launch silently with the default.
    body = error(launch({**spec(version), "epoch": 3, "warmup_steps": 10}), 400)
    assert body["code"] == "invalid"
    assert body["fields"] == {name: [f"Unknown field. Accepted: {ACCEPTED_LAUNCH_FIELDS}."]
                              for name in ("epoch", "warmup_steps")}
    assert body["detail"] == (f"Unknown fields: epoch, warmup_steps. Remove them; the accepted fields are: "
                              f"{ACCEPTED_LAUNCH_FIELDS}.")
    # With other problems too: each one in `fields`, and `detail` says there is more.
    body = error(launch({**spec(version), "lora_r": 0, "epoch": 3}), 400)
    assert set(body["fields"]) == {"epoch", "lora_r"} and "greater than or equal to 1" in body["fields"]["lora_r"][0]
    assert body["detail"].startswith("Unknown field: epoch. Remove it;") and "see `fields`" in body["detail"]
    # Inside a Datanet version reference as well.
    ref = {"datanet": version.datanet.slug, "number": version.number, "version": 1}
    body = error(launch({**spec(version), "datanet_versions": [ref]}), 400)
    assert body["fields"] == {"datanet_versions": ["Item 1: version: Unknown field. Accepted: datanet, number."]}
    assert not FineTuneJob.objects.exists()
    # Every accepted field, and nothing else: launched.
    every = {**spec(version), "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": ["query"],
             "seed": 7}
    assert set(every) == set(ACCEPTED_LAUNCH_FIELDS.split(", "))
    launched = launch(every, run=False)
    assert launched.status_code == 201, launched.content
    assert FineTuneJob.objects.get().hyperparameters["seed"] == 7


def test_a_body_that_is_not_a_json_object_is_refused(trainer):
    assert "Expected a dictionary" in error(trainer.post(JOBS, [1, 2], format="json"), 400)["detail"]
    form_encoded = error(trainer.post(JOBS, {"name": "x"}), 415)  # the test client's default: multipart
    assert form_encoded["code"] == "unsupported_media_type"
    assert error(trainer.post(JOBS, "{not json", content_type="application/json"), 400)["code"] == "parse_error"


def test_the_engines_own_checks_come_back_as_field_errors(alice, publish, launch):
    one_row = publish(alice, [{"text": "only one row here", "label": "billing"}], name="Tiny")
    body = error(launch(spec(one_row)), 400)
    assert "fewer than 2 rows" in body["fields"]["datanet_versions"][0]


def test_launching_needs_the_train_scope(alice, publish, intent_rows, key_client, api_client, launch):
    version = publish(alice, intent_rows(1))
    for scopes in (("read",), ("contribute",), ("infer",)):
        body = error(launch(spec(version), client=key_client(alice, *scopes)), 403)
        assert body["code"] == "permission_denied" and "'train' scope" in body["detail"]
    assert error(api_client.post(JOBS, spec(version), format="json"), 401)["code"] == "not_authenticated"
    assert error(key_client(alice, "train").get(JOBS), 403)["detail"].endswith("'read' scope needed here.")
    assert not FineTuneJob.objects.exists()


# --- Jobs: lists, other people's jobs, cancel and resume --------------------------------------------------


def test_lists_are_the_callers_own_and_filters_are_checked(alice, charlie, publish, intent_rows, launch, key_client,
                                                           trainer):
    version = publish(alice, intent_rows(1))
    job_id = launch(spec(version), run=False).json()["id"]
    assert [j["id"] for j in trainer.get(JOBS, {"state": "queued"}).json()["results"]] == [job_id]
    assert trainer.get(JOBS, {"state": "running"}).json()["count"] == 0
    assert key_client(charlie, "read").get(JOBS).json()["count"] == 0
    bad = error(trainer.get(JOBS, {"state": "finished"}), 400)
    assert bad["fields"]["state"] == ["Use one of: queued, running, succeeded, failed, cancelled."]
    assert error(trainer.get(MODELS, {"mine": "perhaps"}), 400)["fields"]["mine"]
    assert error(trainer.get(JOBS, {"page_size": "0"}), 400)["fields"]["page_size"]
    bases = trainer.get("/api/v1/base-models/").json()["results"]
    assert [(b["slug"], b["task_types"]) for b in bases] == [("all-minilm-l6-v2", ["text-classification"])]


def test_another_users_job_is_404_whatever_the_key(alice, charlie, publish, intent_rows, launch, key_client):
    version = publish(alice, intent_rows(1))
    url = launch(spec(version), run=False).json()["url"]
    for client in (key_client(charlie, "read", "train"), key_client(charlie, "infer")):
        for method, suffix in (("get", ""), ("post", "cancel/"), ("post", "resume/")):
            body = error(getattr(client, method)(url + suffix), 404)
            assert body["code"] == "not_found"
    assert FineTuneJob.objects.get().state == JobState.QUEUED


def test_cancel_a_queued_job_then_resume_it_to_the_end(alice, publish, intent_rows, launch, trainer,
                                                       django_capture_on_commit_callbacks):
    version = publish(alice, intent_rows(1))
    url = launch(spec(version), run=False).json()["url"]
    cancelled = trainer.post(f"{url}cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == JobState.CANCELLED
    assert cancelled.json()["resumable"] is True
    again = error(trainer.post(f"{url}cancel/"), 409)
    assert again["code"] == "not_cancellable" and "is cancelled" in again["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        resumed = trainer.post(f"{url}resume/")
    assert resumed.status_code == 202 and resumed.json()["state"] == JobState.QUEUED
    done = trainer.get(url).json()  # the task ran once the request committed
    assert done["state"] == JobState.SUCCEEDED and done["model_version"] and done["error"] == "", done["error"]
    finished = error(trainer.post(f"{url}resume/"), 409)
    assert finished["code"] == "not_resumable" and "is succeeded" in finished["detail"]
    assert error(trainer.post(f"{url}cancel/"), 409)["code"] == "not_cancellable"
    assert AuditEvent.objects.filter(action="fine_tune.resume", actor=alice).count() == 1


def test_a_running_job_cancelled_through_the_api_resumes_from_its_checkpoint(
        alice, publish, intent_rows, trainer, launch, monkeypatch, django_capture_on_commit_callbacks):
    """The owner presses cancel (the API) while the worker trains; the engine stops at its next step and keeps
    its checkpoint; resume continues from that step to a registered model."""
    from models_registry.training import runner

    monkeypatch.setattr(services.fine_tune_runs, "CANCEL_POLL_S", 0.0)
    real, polls, answers = runner.run_training, [0], []

    def run_and_cancel_midway(spec_, rows, work_dir, on_progress=None, should_cancel=None, **kwargs):
        def cancel_after_three_steps():
            polls[0] += 1
            if polls[0] == 4 and not answers:
                job = FineTuneJob.objects.get()
                answers.append(trainer.post(f"{JOBS}{job.pk}/cancel/"))
            return should_cancel()

        return real(spec_, rows, work_dir, on_progress, cancel_after_three_steps, **kwargs)

    monkeypatch.setattr(services.training, "run_training", run_and_cancel_midway, raising=False)
    version = publish(alice, intent_rows(1))
    url = launch(spec(version, batch_size=2)).json()["url"]
    assert answers[0].status_code == 200 and answers[0].json()["cancel_requested"] is True
    stopped = trainer.get(url).json()
    assert stopped["state"] == JobState.CANCELLED and stopped["step"] == 3 and stopped["resumable"]
    with django_capture_on_commit_callbacks(execute=True):
        assert trainer.post(f"{url}resume/").status_code == 202
    done = trainer.get(url).json()
    assert done["state"] == JobState.SUCCEEDED and done["resumed_from_step"] == 3, done["error"]
    steps = [step for step, _ in done["loss_curve"]]
    assert steps == sorted(set(steps)) and steps[-1] == done["total_steps"]


def test_resume_checks_training_access_again(alice, bob, publish, intent_rows, key_client, launch, cast_roles):
    from datanets import services as datanet_services

    version = publish(alice, intent_rows(1), visibility="private")
    cast_roles(version.datanet)  # bob curates it, so he may train on it until alice removes him
    bob_key = key_client(bob, "read", "train")
    url = launch(spec(version), client=bob_key, run=False).json()["url"]
    assert bob_key.post(f"{url}cancel/").status_code == 200
    datanet_services.membership_remove(datanet=version.datanet, actor=alice, user=bob)
    body = error(bob_key.post(f"{url}resume/"), 400)
    assert "may not train on" in body["fields"]["datanet_versions"][0]
    assert FineTuneJob.objects.get().state == JobState.CANCELLED


# --- Model versions: other people, prices, paid deploys -----------------------------------------------------


def test_other_people_read_a_deployed_model_but_change_nothing(trained, alice, charlie, key_client, api_client):
    url = f"{MODELS}{trained.slug}/"
    charlie_key = key_client(charlie, "read", "train")
    for client in (charlie_key, api_client):
        assert error(client.get(url), 404)["code"] == "not_found"  # not deployed yet
    assert error(charlie_key.post(f"{url}deploy/"), 404)["code"] == "not_found"
    services.model_version_set_deployed(version=trained, actor=alice, deployed=True)
    assert charlie_key.get(url).json()["slug"] == trained.slug
    assert [m["slug"] for m in api_client.get(MODELS).json()["results"]] == [trained.slug]
    assert charlie_key.get(MODELS, {"mine": "true"}).json()["count"] == 0
    assert error(charlie_key.patch(url, {"price_per_inference": "1"}, format="json"), 403)["detail"] == (
        "Only the model's owner changes it.")
    assert error(charlie_key.post(f"{url}undeploy/"), 403)["detail"] == "Only the model's owner deploys it."
    assert error(api_client.post(f"{url}undeploy/"), 401)["code"] == "not_authenticated"
    assert "not allowed downloads" in error(charlie_key.get(f"{url}adapter/"), 403)["detail"]
    owner = key_client(alice, "read", "train")
    assert owner.patch(url, {"allow_download": True}, format="json").json()["allow_download"] is True
    assert charlie_key.get(f"{url}adapter/")["X-Model-Version-Hash"] == trained.version_hash
    assert error(key_client(alice, "read").post(f"{url}undeploy/"), 403)["detail"].endswith("'train' scope needed here.")
    assert ModelVersion.objects.get().deployed is True


# (price as sent, what the refusal says); one trained model answers them all (training is the slow part).
BAD_PRICES = [
    (-1, "cannot be negative"),
    ("-5", "cannot be negative"),
    ("0.05", "not OPEN: 0.05 OPEN is \"50000000000000000\""),
    ("lots", "“lots” is not an amount"),
    (1.5, "string of OPEN base units"),
    (True, "string of OPEN base units"),
    ({"amount": 1}, "string of OPEN base units"),
    ("1e18", "“1e18” is not an amount"),
    (str(2**256), "larger than any OPEN amount"),
]


def test_owner_settings_refuse_garbled_prices_and_paid_deploys_wait_for_the_index(trained, alice, key_client):
    owner, url = key_client(alice, "train"), f"{MODELS}{trained.slug}/"
    for price, message in BAD_PRICES:
        body = error(owner.patch(url, {"price_per_inference": price}, format="json"), 400)
        assert message in body["fields"]["price_per_inference"][0], (price, body)
    body = error(owner.patch(url, {"deployed": True, "description": "x"}, format="json"), 400)
    assert body["fields"] == {"deployed": ["Unknown field. Accepted: price_per_inference, allow_download, description."]}
    assert body["detail"] == ("Unknown field: deployed. Remove it; the accepted fields are: price_per_inference, "
                              "allow_download, description.")
    body = error(owner.patch(url, {"price": "1", "price_per_inference": "0.5"}, format="json"), 400)
    assert set(body["fields"]) == {"price", "price_per_inference"} and "see `fields`" in body["detail"]
    assert ModelVersion.objects.get().description != "x"
    assert "Send at least one" in error(owner.patch(url, {}, format="json"), 400)["detail"]
    assert ModelVersion.objects.get().price_per_inference == 0
    assert owner.patch(url, {"price_per_inference": 1000}, format="json").json()["price_per_inference"] == "1000"
    # Paid, with no attribution index yet: deploying waits for it.
    body = error(owner.post(f"{url}deploy/"), 409)
    assert body["code"] == "index_not_ready" and "attribution index is ready" in body["detail"]
    # Free and deployed, still without an index: setting a price now would skip the deploy check; refused.
    assert owner.patch(url, {"price_per_inference": 0}, format="json").status_code == 200
    assert owner.post(f"{url}deploy/").json()["deployed"] is True
    body = error(owner.patch(url, {"price_per_inference": 1000}, format="json"), 400)
    assert "cannot charge before the index is ready" in body["fields"]["price_per_inference"][0]
    assert ModelVersion.objects.get().price_per_inference == 0
    assert owner.post(f"{url}undeploy/").json()["deployed"] is False
    assert owner.patch(url, {"price_per_inference": 1000}, format="json").status_code == 200
    services.model_version_set_attribution_status(version=trained, status="ready")
    assert owner.post(f"{url}deploy/").json()["deployed"] is True


def test_the_schema_documents_the_modelfactory_api(client):
    import json

    paths = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/json").content)["paths"]
    for path in ("/api/v1/fine-tunes/", "/api/v1/fine-tunes/{job_id}/cancel/", "/api/v1/fine-tunes/{job_id}/resume/",
                 "/api/v1/models/{slug}/adapter/", "/api/v1/models/{slug}/deploy/", "/api/v1/base-models/"):
        assert path in paths
    price = paths["/api/v1/models/{slug}/"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert price["$ref"].endswith("PatchedModelVersionUpdateRequest")
    assert "409" in paths["/api/v1/fine-tunes/{job_id}/resume/"]["post"]["responses"]
    assert "Repr-Digest" in paths["/api/v1/models/{slug}/adapter/"]["get"]["responses"]["200"]["headers"]
