"""Issue #22, item 7: every model of the project is in the Django admin, and Datanets, contributions and
rows can be looked after there (`/admin/datanets/` was a 404).

Each registered model's changelist renders for staff with a search (and a filter where it has one), and
so does the change page of an object where one exists. The moderation actions on contributions and rows
go through `datanets.services` (audited), never through raw updates.
"""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from accounts.models import AuditEvent
from datanets.models import Contribution, ContributionState, Record, RecordStatus
from datanets.services import access_request_create, version_verify

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("accounts", "datanets", "models_registry", "attribution", "inference", "rewards", "insights")


@pytest.fixture
def datanet_world(datanet_factory, published_version, upload_rows, rows_of, alice, dora, charlie, cast_roles):
    """A Datanet with the cast's members, a published and verified version, dora's contribution with a refused
    row and one waiting for review, and charlie's training-access request."""
    datanet = cast_roles(datanet_factory(alice, name="Admin reviews", training_access="approval"))
    version = published_version(datanet, alice, rows=rows_of(4))
    version_verify(version=version, actor=alice)
    waiting = upload_rows(datanet, dora, rows_of(3, start=50, prefix="Waiting") + [{"text": "", "label": "positive"}])
    access_request_create(datanet=datanet, requester=charlie, message="For a sentiment model.")
    return {"datanet": datanet, "version": version, "waiting": waiting}


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_every_model_of_the_project_is_registered():
    missing = [model._meta.label for app in PROJECT_APPS for model in apps.get_app_config(app).get_models()
               if model not in admin.site._registry]
    assert not missing, f"not in the Django admin: {missing}"
    for model in apps.get_app_config("datanets").get_models():
        model_admin = admin.site._registry[model]
        assert model_admin.list_display != ("__str__",) and model_admin.search_fields and model_admin.list_filter, model


def test_each_changelist_and_change_page_renders_for_staff_with_search(staff_client, datanet_world):
    assert staff_client.get("/admin/datanets/").status_code == 200
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        query = {"q": "review"} if model_admin.search_fields else {}
        response = staff_client.get(changelist, query)
        assert response.status_code == 200, f"{opts.label} changelist with {query}: {response.status_code}"
        if model_admin.list_filter and isinstance(model_admin.list_filter[0], str) and "__" not in model_admin.list_filter[0]:
            field = model_admin.list_filter[0]
            value = model.objects.values_list(field, flat=True).first()
            if value is not None:
                filtered = staff_client.get(changelist, {f"{field}__exact": value} if not isinstance(value, bool)
                                            else {f"{field}__exact": int(value)})
                assert filtered.status_code == 200, f"{opts.label} filtered by {field}"
        obj = model.objects.order_by("pk").first()
        if obj is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            assert staff_client.get(change).status_code == 200, f"{opts.label} change page"


def test_datanets_admin_lists_and_finds_what_the_site_shows(staff_client, datanet_world):
    datanet = datanet_world["datanet"]
    listing = staff_client.get(reverse("admin:datanets_datanet_changelist"), {"q": "Admin reviews"}).content.decode()
    assert "Admin reviews" in listing and ">4<" in listing  # its accepted rows
    rows = staff_client.get(reverse("admin:datanets_record_changelist"), {"q": "Waiting 50"}).content.decode()
    assert "Waiting 50" in rows and "Review 0" not in rows
    contributions = staff_client.get(reverse("admin:datanets_contribution_changelist"),
                                     {"q": "dora", "state__exact": ContributionState.IN_REVIEW}).content.decode()
    assert f"Contribution #{datanet_world['waiting'].pk} to {datanet}" in contributions
    errors = staff_client.get(reverse("admin:datanets_rowerror_changelist"), {"q": "empty"}).content.decode()
    assert "0 row errors" not in errors and "empty" in errors.lower()


def test_contribution_actions_review_through_the_service_with_an_audit_row(staff_client, datanet_world):
    waiting = datanet_world["waiting"]
    pending = Record.objects.filter(contribution=waiting, status=RecordStatus.PENDING)
    assert pending.count() == 3
    changelist = reverse("admin:datanets_contribution_changelist")
    reject_one = pending.order_by("pk").first()
    response = staff_client.post(reverse("admin:datanets_record_changelist"), {
        "action": "reject_rows", ACTION_CHECKBOX_NAME: [reject_one.pk]}, follow=True)
    assert response.status_code == 200 and "1 row rejected" in response.content.decode()
    reject_one.refresh_from_db()
    assert reject_one.status == RecordStatus.REJECTED and reject_one.reason

    response = staff_client.post(changelist, {"action": "accept_pending_rows", ACTION_CHECKBOX_NAME: [waiting.pk]},
                                 follow=True)
    assert response.status_code == 200 and "2 rows accepted" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.state == ContributionState.DONE and waiting.reviewed_at is not None
    assert not Record.objects.filter(contribution=waiting, status=RecordStatus.PENDING).exists()
    decisions = AuditEvent.objects.filter(action__in=["record.accept", "record.reject"],
                                          details__moderated_in_admin=True)
    assert decisions.count() == 2 and {e.actor.username for e in decisions} == {"staff"}


def test_moderation_needs_the_row_change_permission(client, make_user, datanet_world):
    clerk = make_user("clerk", staff=True)  # outside the cast: staff, but without the permission on rows
    client.force_login(clerk)
    waiting = datanet_world["waiting"]
    response = client.post(reverse("admin:datanets_contribution_changelist"),
                           {"action": "accept_pending_rows", ACTION_CHECKBOX_NAME: [waiting.pk]})
    assert response.status_code == 403
    assert Record.objects.filter(contribution=waiting, status=RecordStatus.PENDING).count() == 3
    assert Contribution.objects.get(pk=waiting.pk).state == ContributionState.IN_REVIEW
