import pytest
from django.urls import reverse

from accounts.models import ApiKey, AuditEvent
from accounts.services import api_key_revoke

pytestmark = pytest.mark.django_db


def test_key_authenticates_and_reports_its_scopes(alice, key_client):
    client = key_client(alice, "read", "infer")
    response = client.get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["email"] == alice.email
    assert response.json()["scopes"] == ["infer", "read"]


def test_secret_is_never_stored_in_clear(alice, api_key_for):
    key, secret = api_key_for(alice, "read")
    stored = ApiKey.objects.filter(pk=key.pk).values_list("prefix", "secret_hash", "name").get()
    assert all(secret not in str(value) for value in stored)
    assert key.secret_hash != secret and len(key.secret_hash) == 64


def test_missing_scope_is_refused_with_a_clear_error(alice, key_client):
    client = key_client(alice, "infer")
    response = client.get("/api/v1/me/")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission_denied"
    assert "'read' scope" in body["detail"]


def test_revoked_key_is_rejected(alice, api_key_for, api_client):
    key, secret = api_key_for(alice, "read")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api_client.get("/api/v1/me/").status_code == 200
    api_key_revoke(api_key=key, actor=alice)
    response = api_client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


@pytest.mark.parametrize("header", ["Bearer lin_nothing_here", "Bearer garbage", "Bearer "])
def test_forged_keys_are_rejected(header, alice, api_key_for, api_client):
    api_key_for(alice, "read")
    api_client.credentials(HTTP_AUTHORIZATION=header)
    assert api_client.get("/api/v1/me/").status_code == 401


def test_right_prefix_wrong_secret_is_rejected(alice, api_key_for, api_client):
    key, secret = api_key_for(alice, "read")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer lin_{key.prefix}_{'x' * 43}")
    assert api_client.get("/api/v1/me/").status_code == 401


def test_unauthenticated_request_gets_json_error(api_client):
    response = api_client.get("/api/v1/me/")
    assert response.status_code in (401, 403)
    assert set(response.json()) == {"code", "detail", "fields"}


def test_create_and_revoke_through_the_page_are_audited(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:api_keys"), {"name": "laptop", "scopes": ["read", "contribute"]}, follow=True)
    assert response.redirect_chain == [(reverse("accounts:api_keys"), 302)]  # POST/redirect/GET (test_api_key_reload)
    key = ApiKey.objects.get(user=alice, name="laptop")
    assert f"lin_{key.prefix}_" in response.content.decode()  # the secret is shown once
    client.post(reverse("accounts:api_key_revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.revoked_at is not None
    actions = list(AuditEvent.objects.filter(object_id=str(key.pk)).values_list("action", flat=True))
    assert sorted(actions) == ["api_key.create", "api_key.revoke"]
    # The secret is not shown again on a later visit.
    assert f"lin_{key.prefix}_" not in client.get(reverse("accounts:api_keys")).content.decode().replace(
        f"lin_{key.prefix}_…", ""
    )


def test_bad_key_form_input_gets_field_errors(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:api_keys"), {"name": "", "scopes": ["root"]})
    assert response.status_code == 200
    assert not ApiKey.objects.exists()
    text = response.content.decode()
    assert "This field is required" in text and "Select a valid choice" in text


def test_users_cannot_revoke_each_others_keys(client, alice, bob, api_key_for):
    key, _ = api_key_for(alice, "read")
    client.force_login(bob)
    assert client.post(reverse("accounts:api_key_revoke", args=[key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_audit_events_are_append_only(alice, api_key_for):
    from django.core.exceptions import ValidationError

    api_key_for(alice, "read")
    event = AuditEvent.objects.get()
    event.action = "tampered"
    with pytest.raises(ValidationError):
        event.save()
    with pytest.raises(ValidationError):
        event.delete()
