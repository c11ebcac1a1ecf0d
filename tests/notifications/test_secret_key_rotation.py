"""`manage.py notifications_rotate_secret_key`: after NOTIFICATIONS_SECRET_KEY (or the SECRET_KEY it defaults to)
changed, every stored webhook secret is re-encrypted under the new key, in one transaction and audited; a secret
that neither key opens stops it before anything changes, naming the webhook; the old key is never printed."""

import io

import pytest
from django.core.management import CommandError, call_command
from test_webhooks import documented_verify

from accounts.models import AuditAction, AuditEvent
from notifications import secret_box, services
from notifications.models import DeliveryState, Webhook

pytestmark = pytest.mark.django_db

OLD, NEW = "an old notifications key", "a new notifications key"


def add_webhooks(owner, settings, key, n=1, url="http://127.0.0.1:9/hook"):
    settings.NOTIFICATIONS_SECRET_KEY = key
    return [services.webhook_create(owner=owner, url=url, events=["version.published"]) for _ in range(n)]


def stored():
    return dict(Webhook.objects.values_list("pk", "secret_encrypted"))


def rotate(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("notifications_rotate_secret_key", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def old_key_in_env(monkeypatch):
    monkeypatch.setenv("NOTIFICATIONS_OLD_SECRET_KEY", OLD)


def test_every_secret_is_re_encrypted_under_the_new_key_and_deliveries_verify(alice, settings, endpoint,
                                                                               old_key_in_env):
    hooks = add_webhooks(alice, settings, OLD, n=2, url=endpoint.url)
    secrets = {hook.pk: hook.secret for hook in hooks}
    settings.NOTIFICATIONS_SECRET_KEY = NEW
    later = add_webhooks(alice, settings, NEW)[0]  # added after the key changed: already under it
    before = stored()

    output = rotate()
    assert "re-encrypted 2 of 3 webhook secrets under the current NOTIFICATIONS_SECRET_KEY; 1 already used it" in output
    assert OLD not in output and NEW not in output
    after = stored()
    assert after[later.pk] == before[later.pk]  # left as it was
    for pk, secret in secrets.items():
        assert after[pk] != before[pk] and secret_box.unseal(after[pk], key=NEW) == secret
        assert Webhook.objects.get(pk=pk).secret == secret  # the owners keep their secrets
    [event] = AuditEvent.objects.filter(action=AuditAction.NOTIFICATIONS_SECRET_KEY_ROTATE)
    assert event.details == {"rotated": 2, "already_current": 1, "webhooks": sorted(secrets)}
    assert event.actor is None and event.object_type == "notifications.webhook"

    # Deliveries are signed again, with the same secret, so receivers verify them as before.
    delivery = services.webhook_send_test(webhook=Webhook.objects.get(pk=hooks[0].pk), actor=alice)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.DELIVERED
    [request] = endpoint.received
    assert documented_verify()(secrets[hooks[0].pk], request.body, request.headers["x-lineage-signature"])

    # A second run finds nothing to do and audits nothing.
    assert "re-encrypted 0 of 3 webhook secrets" in rotate()
    assert stored() == after
    assert AuditEvent.objects.filter(action=AuditAction.NOTIFICATIONS_SECRET_KEY_ROTATE).count() == 1


def test_a_secret_neither_key_opens_stops_the_run_and_changes_nothing(alice, bob, settings, old_key_in_env):
    add_webhooks(alice, settings, OLD, n=2)
    [lost] = add_webhooks(bob, settings, "a third key nobody has any more")
    settings.NOTIFICATIONS_SECRET_KEY = NEW
    before = stored()
    with pytest.raises(CommandError) as refused:
        rotate()
    message = str(refused.value)
    assert f"webhook {lost.pk} opens with neither" in message and "Nothing was changed" in message
    assert "--old-key-is-secret-key" in message and OLD not in message and NEW not in message
    assert stored() == before
    assert not AuditEvent.objects.filter(action=AuditAction.NOTIFICATIONS_SECRET_KEY_ROTATE).exists()


def test_a_dry_run_reports_and_writes_nothing(alice, settings, old_key_in_env):
    add_webhooks(alice, settings, OLD, n=3)
    settings.NOTIFICATIONS_SECRET_KEY = NEW
    before = stored()
    output = rotate("--dry-run")
    assert output.strip() == ("dry run: would re-encrypt 3 of 3 webhook secrets under the current "
                              "NOTIFICATIONS_SECRET_KEY; 0 already used it; nothing was changed")
    assert stored() == before
    assert not AuditEvent.objects.filter(action=AuditAction.NOTIFICATIONS_SECRET_KEY_ROTATE).exists()
    with pytest.raises(CommandError, match="opens with neither"):  # a dry run checks the old key too
        rotate("--dry-run", "--old-key", "a wrong key")


def test_a_key_derived_from_an_old_secret_key(alice, settings, monkeypatch):
    """The default NOTIFICATIONS_SECRET_KEY follows SECRET_KEY: after SECRET_KEY changed, the operator gives the
    old SECRET_KEY and the command derives the old key from it as the settings did."""
    [hook] = add_webhooks(alice, settings, secret_box.key_from_secret_key("old django secret key"))
    secret = hook.secret
    settings.NOTIFICATIONS_SECRET_KEY = secret_box.key_from_secret_key("new django secret key")
    monkeypatch.setenv("LINEAGE_OLD_SECRET_KEY", "old django secret key")
    with pytest.raises(CommandError, match=f"webhook {hook.pk} opens with neither"):
        rotate("--old-key-env", "LINEAGE_OLD_SECRET_KEY")  # taken as the notifications key itself: wrong
    assert "re-encrypted 1 of 1 webhook secret " in rotate("--old-key-env", "LINEAGE_OLD_SECRET_KEY",
                                                           "--old-key-is-secret-key")
    assert Webhook.objects.get(pk=hook.pk).secret == secret


def test_the_old_key_from_a_file_or_the_command_line(alice, settings, tmp_path):
    [hook] = add_webhooks(alice, settings, OLD)
    secret = hook.secret
    settings.NOTIFICATIONS_SECRET_KEY = NEW
    key_file = tmp_path / "old-key"
    key_file.write_text(OLD + "\n")
    assert "would re-encrypt 1 of 1" in rotate("--old-key-file", str(key_file), "--dry-run")
    assert "re-encrypted 1 of 1" in rotate("--old-key", OLD)
    assert secret_box.unseal(stored()[hook.pk], key=NEW) == secret


def test_bad_inputs_are_refused_with_what_to_do(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFICATIONS_OLD_SECRET_KEY", raising=False)
    settings.NOTIFICATIONS_SECRET_KEY = NEW
    with pytest.raises(CommandError, match="No old key: set NOTIFICATIONS_OLD_SECRET_KEY"):
        rotate()
    with pytest.raises(CommandError, match="is the key this server uses now .*set the new key in the settings first"):
        rotate("--old-key", NEW)
    with pytest.raises(CommandError, match="cannot be read"):
        rotate("--old-key-file", str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(CommandError, match="is empty"):
        rotate("--old-key-file", str(tmp_path / "empty"))
    with pytest.raises(CommandError, match="not allowed with argument"):
        rotate("--old-key", OLD, "--old-key-file", str(tmp_path / "empty"))
    assert rotate("--old-key", OLD).strip() == "no webhooks: nothing to re-encrypt"
