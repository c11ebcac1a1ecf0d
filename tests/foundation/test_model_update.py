"""`lineage.model_update.model_update`, the one way services change some fields of a row: only allowed, real
fields; only values that differ are validated and saved (with `updated_at`); nothing changed, nothing written,
so callers audit only real changes. And the services built on it audit that way."""

import pytest
from django.core.exceptions import ValidationError
from django.db.models.signals import pre_save

from accounts.models import AuditAction, AuditEvent
from datanets.models import Datanet
from lineage.model_update import model_update

pytestmark = pytest.mark.django_db
SETTINGS = ("name", "summary", "tags", "near_dup_threshold", "visibility")


@pytest.fixture
def datanet(alice):
    from datanets.services import datanet_create

    return datanet_create(owner=alice, name="Support intents", task_type="text-classification",
                          label_set=["billing", "shipping"], summary="First summary", tags=["support"])


def test_only_the_changed_fields_are_validated_and_saved(datanet):
    stamp, saved = datanet.updated_at, []

    def record(sender, instance, update_fields, **kwargs):
        saved.append(sorted(update_fields or ["<every field>"]))

    pre_save.connect(record, sender=Datanet)
    try:
        instance, has_updated = model_update(instance=datanet, fields=SETTINGS,
                                             data={"name": "Support intents", "summary": "Second summary",
                                                   "tags": ["support", "billing"]})
    finally:
        pre_save.disconnect(record, sender=Datanet)
    assert instance is datanet and has_updated
    assert saved == [["summary", "tags", "updated_at"]]  # name was sent unchanged: not written
    stored = Datanet.objects.get(pk=datanet.pk)
    assert (stored.summary, stored.tags) == ("Second summary", ["support", "billing"])
    assert stored.updated_at > stamp


def test_nothing_changed_writes_nothing(datanet, django_assert_num_queries):
    with django_assert_num_queries(0):
        update = model_update(instance=datanet, fields=SETTINGS, data={"summary": "First summary", "tags": ["support"]})
    assert not update.has_updated and update.changes == {} and tuple(update) == (datanet, False)


def test_the_changes_say_what_changed_for_the_audit_row(datanet):
    update = model_update(instance=datanet, fields=SETTINGS, data={"summary": "New", "visibility": "public",
                                                                   "near_dup_threshold": 0.9})
    assert update.changes == {"summary": ("First summary", "New"), "near_dup_threshold": (0.8, 0.9)}
    assert update.audit_details() == {"summary": {"from": "First summary", "to": "New"},
                                      "near_dup_threshold": {"from": 0.8, "to": 0.9}}


def test_a_field_outside_the_allowed_ones_is_refused_by_name_before_anything_is_set(datanet):
    with pytest.raises(ValidationError) as refused:
        model_update(instance=datanet, fields=SETTINGS, data={"summary": "New", "owner": None, "slug": "mine"})
    assert sorted(refused.value.message_dict) == ["owner", "slug"]
    assert "'slug' cannot be changed here" in refused.value.message_dict["slug"][0]
    datanet.refresh_from_db()
    assert datanet.summary == "First summary"


@pytest.mark.parametrize("bad", ["no_such_field", "id", "created_at", "memberships"])
def test_a_name_that_is_no_editable_field_is_a_programming_error(datanet, bad):
    with pytest.raises(ValueError, match=f"Datanet.{bad} is not a concrete, editable field"):
        model_update(instance=datanet, fields=[*SETTINGS, bad], data={})


def test_a_value_the_model_refuses_is_not_saved(datanet):
    with pytest.raises(ValidationError) as refused:
        model_update(instance=datanet, fields=SETTINGS, data={"summary": "s" * 281, "visibility": "everyone"})
    assert sorted(refused.value.message_dict) == ["summary", "visibility"]
    stored = Datanet.objects.get(pk=datanet.pk)
    assert (stored.summary, stored.visibility) == ("First summary", "public")


# --- The services built on it audit only real changes ------------------------------------------------------


def test_datanet_update_audits_only_real_changes(datanet, alice):
    from datanets.services import datanet_update

    def audited():
        return list(AuditEvent.objects.filter(action=AuditAction.DATANET_UPDATE).values_list("details", flat=True))

    datanet_update(datanet=datanet, actor=alice, summary="First summary", visibility="public")
    assert audited() == []  # a settings form saved as it was
    datanet_update(datanet=datanet, actor=alice, summary="Second summary", visibility="public")
    assert audited() == [{"summary": {"from": "First summary", "to": "Second summary"}}]
    with pytest.raises(ValidationError, match="This setting cannot be changed"):
        datanet_update(datanet=datanet, actor=alice, slug="taken-over")


def test_notification_settings_update_audits_only_real_changes(alice):
    from notifications.services import notification_settings_update

    notification_settings_update(user=alice, choices={"fine_tune_finished": True})  # the default already
    assert not AuditEvent.objects.filter(action=AuditAction.NOTIFICATIONS_SETTINGS_UPDATE).exists()
    settings_row = notification_settings_update(user=alice, choices={"fine_tune_finished": False,
                                                                     "access_decided": True})
    assert settings_row.email_fine_tune_finished is False and settings_row.email_access_decided is True
    [event] = AuditEvent.objects.filter(action=AuditAction.NOTIFICATIONS_SETTINGS_UPDATE)
    assert event.details == {"fine_tune_finished": False}
