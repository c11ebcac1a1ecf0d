"""Issue #22, item 4: the fine-tune form and service refuse data the worker would fail on, with the reason.

- Two versions of one Datanet (v2 holds v1's rows): the job used to be queued and then failed in the
  worker with "duplicate row ids".
- Versions that share rows in any other way.
- A Datanet whose task type no offered base model can train.

Each refusal is checked through the page (Django test client POST, as a person submits the form) and
through the service; nothing is queued.
"""

import html
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from datanets import services as datanet_services
from datanets.models import Record, RecordStatus, VersionRecord
from models_registry import services
from models_registry.forms import FineTuneForm
from models_registry.models import BaseModel, FineTuneJob

pytestmark = pytest.mark.django_db

FORM_DEFAULTS = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": "", "learning_rate": 5e-4,
                 "epochs": 1, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.1, "seed": 0}


@pytest.fixture
def two_versions(alice, intent_rows, publish, django_capture_on_commit_callbacks):
    """v1 and v2 of "Support intents": v2 holds every row of v1 and a few more."""
    v1 = publish(alice, intent_rows(1), name="Support intents")
    datanet = v1.datanet
    with django_capture_on_commit_callbacks(execute=True):
        datanet_services.contribution_create_from_rows(
            datanet=datanet, contributor=alice,
            rows=[{"text": f"my refund {i} has not arrived yet", "label": "billing"} for i in range(3)])
    pending = Record.objects.filter(datanet=datanet, status=RecordStatus.PENDING).values_list("pk", flat=True)
    datanet_services.records_review(datanet=datanet, reviewer=alice, record_ids=pending, decision="accept")
    v2 = datanet_services.version_publish(datanet=datanet, actor=alice)
    assert set(v1.records.values_list("pk", flat=True)) < set(v2.records.values_list("pk", flat=True))
    return v1, v2


def post_form(client, user, **data):
    client.force_login(user)
    body = {**FORM_DEFAULTS, "name": "journey", "base_model": services.base_model_ensure_default().pk, **data}
    response = client.post(reverse("models_registry:job_create"), body)
    return response, html.unescape(response.content.decode())


def test_two_versions_of_one_datanet_are_refused_by_the_service(alice, two_versions):
    v1, v2 = two_versions
    with pytest.raises(ValidationError) as refused:
        services.fine_tune_create(owner=alice, name="twice", base_model=services.base_model_ensure_default(),
                                  datanet_versions=[v1, v2])
    message = " ".join(refused.value.message_dict["datanet_versions"])
    assert "Support intents" in message and "v1" in message and "v2" in message
    assert "one version" in message
    assert not FineTuneJob.objects.exists()


def test_two_versions_of_one_datanet_are_refused_by_the_form(client, alice, two_versions):
    v1, v2 = two_versions
    response, page = post_form(client, alice, datanet_versions=[v1.pk, v2.pk])
    assert response.status_code == 200  # the form again, with the reason; no redirect to a job
    assert re.search(r"v1 and v2 of “Support intents”", page), page
    assert not FineTuneJob.objects.exists()
    # One version of it is a valid choice.
    form = FineTuneForm({**FORM_DEFAULTS, "name": "once", "base_model": services.base_model_ensure_default().pk,
                         "datanet_versions": [v2.pk]}, user=alice)
    assert form.is_valid(), form.errors


def test_versions_sharing_rows_are_refused(client, alice, intent_rows, publish):
    a = publish(alice, intent_rows(1), name="Intents A")
    b = publish(alice, [{"text": f"where is parcel {i}", "label": "shipping"} for i in range(4)]
                + [{"text": f"double charge {i}", "label": "billing"} for i in range(4)], name="Intents B")
    # A version whose manifest also lists a row of another Datanet's version (as an import or a restore
    # could leave it): the worker would see that row id twice.
    shared = a.records.order_by("pk").first()
    VersionRecord.objects.create(version=b, record=shared)
    with pytest.raises(ValidationError) as refused:
        services.fine_tune_create(owner=alice, name="overlap", base_model=services.base_model_ensure_default(),
                                  datanet_versions=[a, b])
    message = " ".join(refused.value.message_dict["datanet_versions"])
    assert "share 1 row" in message and "Intents A" in message and "Intents B" in message
    response, page = post_form(client, alice, datanet_versions=[a.pk, b.pk])
    assert response.status_code == 200 and "share 1 row" in page
    assert not FineTuneJob.objects.exists()


def test_a_task_type_no_offered_base_model_trains_is_refused_with_the_reason(client, alice, publish):
    services.base_model_ensure_default()  # MiniLM: text classification only
    BaseModel.objects.create(name="Retired Llama", slug="retired-llama", source_kind="path", source_ref="/nowhere",
                             architecture="llama", task_types=["instruction"], is_active=False)
    version = publish(alice, [{"prompt": f"What is {i} plus 1?", "response": str(i + 1)} for i in range(4)],
                      task_type="instruction", labels=(), name="Sums")
    with pytest.raises(ValidationError) as refused:
        services.fine_tune_create(owner=alice, name="sums", base_model=services.base_model_ensure_default(),
                                  datanet_versions=[version])
    message = str(refused.value)
    assert "Sums" in message and "instruction" in message and "no base model offered here" in message
    response, page = post_form(client, alice, datanet_versions=[version.pk])
    assert response.status_code == 200
    assert "“Sums” is an instruction Datanet" in page and "no base model offered here" in page
    assert not FineTuneJob.objects.exists()

    # Once a base model for instructions is offered, the same choice passes these checks.
    BaseModel.objects.filter(slug="retired-llama").update(is_active=True)
    form = FineTuneForm({**FORM_DEFAULTS, "name": "sums", "base_model": BaseModel.objects.get(slug="retired-llama").pk,
                         "datanet_versions": [version.pk]}, user=alice)
    assert form.is_valid(), form.errors
