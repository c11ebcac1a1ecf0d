"""Webhook signing secrets are stored encrypted (notifications/secret_box.py, keyed by NOTIFICATIONS_SECRET_KEY):
the box itself, what the database holds, signing with the decrypted secret, a changed key (deliveries wait and
the page says so, never a 500), the migration that encrypts secrets stored in clear, and the setting's default."""

import runpy
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from test_webhooks import documented_verify

from notifications import secret_box, services
from notifications.models import DeliveryState, Webhook, WebhookDelivery
from notifications.services.deliveries import UNREADABLE_SECRET
from notifications.signing import secret_new

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "lineage" / "settings.py"


# --- The box ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [secret_new(), "", "ü" * 100, "x" * 1000])
def test_a_sealed_secret_opens_with_its_key_only(plaintext):
    token = secret_box.seal(plaintext, key="key one")
    assert secret_box.is_sealed(token) and (not plaintext or plaintext not in token)
    assert secret_box.unseal(token, key="key one") == plaintext
    with pytest.raises(secret_box.SecretBoxError, match="another"):
        secret_box.unseal(token, key="key two")


def test_sealing_is_randomised_and_a_changed_token_is_refused():
    secret = secret_new()
    first, second = secret_box.seal(secret, key="k"), secret_box.seal(secret, key="k")
    assert first != second  # a fresh nonce each time: equal secrets do not show as equal rows
    assert len(first) <= 255  # fits the column, with room to spare
    nonce = bytes(range(16))
    assert secret_box.seal(secret, key="k", nonce=nonce) == secret_box.seal(secret, key="k", nonce=nonce)
    body = first[len(secret_box.PREFIX):]
    for damaged in (secret_box.PREFIX + body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1],  # tag changed
                    secret_box.PREFIX + ("A" if body[30] != "A" else "B").join((body[:30], body[31:])),  # ciphertext
                    secret_box.PREFIX + body[:40],  # cut short
                    secret_box.PREFIX + "!!!!" + body):  # not base64
        with pytest.raises(secret_box.SecretBoxError):
            secret_box.unseal(damaged, key="k")
    with pytest.raises(secret_box.SecretBoxError, match="not an encrypted secret"):
        secret_box.unseal(secret, key="k")  # a secret still in clear
    with pytest.raises(secret_box.SecretBoxError, match="NOTIFICATIONS_SECRET_KEY"):
        secret_box.seal(secret, key="")


# --- Stored encrypted, signed in clear ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_database_holds_only_the_encrypted_secret(alice, settings):
    hook = services.webhook_create(owner=alice, url="http://127.0.0.1:9/x", events=["version.published"])
    secret = hook.secret
    assert secret.startswith("whsec_") and len(secret) > 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM notifications_webhook WHERE id = %s", [hook.pk])
        [stored] = cursor.fetchone()
    assert stored.startswith(secret_box.PREFIX) and secret not in stored
    assert secret_box.unseal(stored, key=settings.NOTIFICATIONS_SECRET_KEY) == secret
    assert Webhook.objects.get(pk=hook.pk).secret == secret  # read back from the database
    # Another webhook gets another secret.
    other = services.webhook_create(owner=alice, url="http://127.0.0.1:9/y", events=["version.published"])
    assert other.secret != secret


@pytest.mark.django_db
def test_a_changed_key_holds_deliveries_until_it_is_restored(alice, client, endpoint, settings):
    verify = documented_verify()
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["version.published"])
    secret, key = hook.secret, settings.NOTIFICATIONS_SECRET_KEY
    delivery = services.webhook_send_test(webhook=hook, actor=alice)  # its task is queued on commit: not run here

    settings.NOTIFICATIONS_SECRET_KEY = "a key the secret was not encrypted with"
    outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (outcome.state, delivery.state, delivery.last_error) == ("pending", DeliveryState.PENDING, UNREADABLE_SECRET)
    assert outcome.retry_in_s and endpoint.received == []  # nothing unsigned or wrongly signed went out
    client.force_login(alice)
    page = client.get(reverse("notifications:webhook", args=[hook.pk]))
    assert page.status_code == 200 and 'data-testid="secret-unreadable"' in page.content.decode()

    settings.NOTIFICATIONS_SECRET_KEY = key  # restored: the next attempt goes through, signed as before
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.DELIVERED
    [request] = endpoint.received
    assert verify(secret, request.body, request.headers["x-lineage-signature"])
    assert WebhookDelivery.objects.get().attempts == 2
    page = client.get(reverse("notifications:webhook", args=[hook.pk])).content.decode()
    assert secret in page and "secret-unreadable" not in page


# --- The migration ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_secrets_stored_in_clear_and_back(alice, settings):
    before, after = [("notifications", "0001_initial")], [("notifications", "0002_webhook_secret_encrypted")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old_model = executor.loader.project_state(before).apps.get_model("notifications", "Webhook")
        clear = [secret_new(), secret_new()]
        pks = [old_model.objects.create(owner_id=alice.pk, url=f"http://127.0.0.1:9/{i}", secret=value,
                                        events=["version.published"]).pk for i, value in enumerate(clear)]
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        stored = dict(Webhook.objects.filter(pk__in=pks).values_list("pk", "secret_encrypted"))
        assert all(secret_box.is_sealed(value) for value in stored.values())
        assert [Webhook.objects.get(pk=pk).secret for pk in pks] == clear
        # Reversed, the secrets are in clear again.
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old_model = executor.loader.project_state(before).apps.get_model("notifications", "Webhook")
        assert [old_model.objects.get(pk=pk).secret for pk in pks] == clear
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)


# --- The setting ----------------------------------------------------------------------------------------------


def test_the_key_defaults_to_one_derived_from_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFICATIONS_SECRET_KEY", raising=False)
    monkeypatch.delenv("NOTIFICATIONS_SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("LINEAGE_VAR_DIR", str(tmp_path / "var"))  # the settings make their directories there

    def key_with(secret_key):
        monkeypatch.setenv("SECRET_KEY", secret_key)
        return runpy.run_path(str(SETTINGS_FILE))["NOTIFICATIONS_SECRET_KEY"]

    first, again, other = key_with("first secret key"), key_with("first secret key"), key_with("another secret key")
    assert first == again != other and "first secret key" not in first and len(first) == 64
    assert first == secret_box.key_from_secret_key("first secret key")  # what the rotation command derives
    monkeypatch.setenv("NOTIFICATIONS_SECRET_KEY", "its own key")
    assert key_with("first secret key") == "its own key"
    key_file = tmp_path / "notifications-key"
    key_file.write_text("a key from a file\n")
    monkeypatch.setenv("NOTIFICATIONS_SECRET_KEY_FILE", str(key_file))
    assert key_with("first secret key") == "a key from a file"
