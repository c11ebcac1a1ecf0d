"""Every model of the notifications app is in the Django admin, and its pages render for staff; the admin
never shows a webhook's signing secret."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from notifications import services
from notifications.models import Webhook

pytestmark = pytest.mark.django_db


def test_models_are_registered_and_render_for_staff(alice, staff, client, run_on_commit, endpoint):
    models = list(apps.get_app_config("notifications").get_models())
    assert len(models) == 4 and all(model in admin.site._registry for model in models)
    services.notification_settings_update(user=alice, choices={"earnings_claimable": False})
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["version.published"])
    with run_on_commit():
        delivery = services.webhook_send_test(webhook=hook, actor=alice)
    client.force_login(staff)
    for model in models:
        opts = model._meta
        changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), {"q": "a"})
        assert changelist.status_code == 200, model
        obj = model.objects.first()
        change = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200, model
    page = client.get(reverse("admin:notifications_webhook_change", args=[hook.pk])).content.decode()
    assert hook.url in page and hook.secret not in page
    assert str(delivery.event.public_id) in page  # the delivery log is inline
    # Staff may switch a webhook off.
    response = client.post(reverse("admin:notifications_webhook_change", args=[hook.pk]),
                           {"url": hook.url, "description": "", "events": '["version.published"]', "active": "",
                            "deliveries-TOTAL_FORMS": "1", "deliveries-INITIAL_FORMS": "1",
                            "deliveries-MIN_NUM_FORMS": "0", "deliveries-MAX_NUM_FORMS": "0",
                            "deliveries-0-id": str(delivery.pk), "deliveries-0-webhook": str(hook.pk)})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Webhook.objects.get(pk=hook.pk).active is False
