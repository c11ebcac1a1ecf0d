"""Creating an API key without JavaScript is POST/redirect/GET: the POST creates the key and redirects to the keys
page, that GET shows the secret once, and reloading the page neither shows it again nor creates a second key.
Between the two requests the secret rides in a short-lived signed cookie for the keys page: never in the URL, never
in the database. With htmx the panel is swapped in place, as before."""

import re

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse
from playwright.sync_api import expect

from accounts.models import ApiKey, AuditEvent
from accounts.views import ISSUED_KEY_COOKIE, ISSUED_KEY_COOKIE_MAX_AGE_S

SECRET = re.compile(r'<p class="secret" id="new-key-secret">(lin_\w+_\S+)</p>')


def tables_holding(text: str) -> list[str]:
    """Every table.column of the database whose value contains `text`."""
    found = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table, columns = model._meta.db_table, [f.column for f in model._meta.concrete_fields]
            cursor.execute(f"SELECT {', '.join(connection.ops.quote_name(c) for c in columns)} FROM "
                           f"{connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                found += [f"{table}.{column}" for column, value in zip(columns, row)
                          if value is not None and text in str(value)]
    return found


@pytest.mark.django_db
def test_create_redirects_shows_the_secret_once_and_a_reload_creates_nothing(client, alice):
    client.force_login(alice)
    url = reverse("accounts:api_keys")

    response = client.post(url, {"name": "laptop uploads", "scopes": ["read", "contribute"]})
    assert response.status_code == 302
    assert response["Location"] == url  # the keys page itself: no secret, no key id in the URL
    key = ApiKey.objects.get(user=alice)
    assert key.name == "laptop uploads" and key.scopes == ["contribute", "read"]
    cookie = response.cookies[ISSUED_KEY_COOKIE]
    assert cookie["path"] == url and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["max-age"] == ISSUED_KEY_COOKIE_MAX_AGE_S

    shown = client.get(response["Location"])
    assert shown.status_code == 200
    text = shown.content.decode()
    secret = SECRET.search(text).group(1)
    assert secret.startswith(f"lin_{key.prefix}_")
    assert "Your new key “laptop uploads”" in text
    assert "no-store" in shown["Cache-Control"]  # no cache (back button included) keeps the page with the secret
    assert shown.cookies[ISSUED_KEY_COOKIE]["max-age"] == 0  # the cookie is gone: shown once
    # The secret is the key's: it authenticates. And only its hash was ever stored, the session table included.
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").json()["scopes"] == ["contribute", "read"]
    assert not tables_holding(secret.split("_", 2)[2])

    reloaded = client.get(url)
    assert reloaded.status_code == 200
    text = reloaded.content.decode()
    assert secret not in text and 'id="new-key-secret"' not in text
    assert "can no longer be shown" not in text
    assert text.count('data-key-name="laptop uploads"') == 1  # the key is still listed, once
    assert ApiKey.objects.filter(user=alice).count() == 1
    assert AuditEvent.objects.filter(action="api_key.create", object_id=str(key.pk)).count() == 1


@pytest.mark.django_db
def test_the_secret_is_in_no_table_between_the_post_and_the_get(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:api_keys"), {"name": "ci", "scopes": ["read"]})
    assert response.status_code == 302
    key = ApiKey.objects.get(user=alice)
    # The cookie's value is "<key id>:<secret>:<timestamp>:<signature>".
    secret = response.cookies[ISSUED_KEY_COOKIE].value.split(":")[1]
    assert secret.startswith(f"lin_{key.prefix}_")
    assert not tables_holding(secret.split("_", 2)[2])


@pytest.mark.django_db
def test_a_second_key_shows_only_its_own_secret(client, alice):
    client.force_login(alice)
    url = reverse("accounts:api_keys")
    first = SECRET.search(client.post(url, {"name": "one", "scopes": ["read"]}, follow=True).content.decode()).group(1)
    response = client.post(url, {"name": "two", "scopes": ["infer"]}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    text = response.content.decode()
    second = SECRET.search(text).group(1)
    assert second != first and first not in text
    assert "Your new key “two”" in text
    assert sorted(ApiKey.objects.filter(user=alice).values_list("name", flat=True)) == ["one", "two"]


@pytest.mark.django_db
def test_a_key_without_a_scope_keeps_the_form_and_says_what_to_do(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:api_keys"), {"name": "no scopes"})
    assert response.status_code == 200  # the form again, not a redirect
    text = response.content.decode()
    assert "Choose at least one scope" in text
    assert 'value="no scopes"' in text  # what was typed is kept
    assert 'id="new-key-secret"' not in text
    assert ISSUED_KEY_COOKIE not in response.cookies
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_a_blank_name_keeps_the_form_and_creates_nothing(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:api_keys"), {"name": "   ", "scopes": ["read"]})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_htmx_swaps_the_panel_with_the_secret_and_leaves_nothing_for_a_later_page(client, alice):
    client.force_login(alice)
    url = reverse("accounts:api_keys")
    response = client.post(url, {"name": "ci", "scopes": ["read"]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # the panel, swapped in place: there is no page to reload
    text = response.content.decode()
    assert text.lstrip().startswith('<div id="keys-panel">')
    secret = SECRET.search(text).group(1)
    assert "no-store" in response["Cache-Control"]
    assert ISSUED_KEY_COOKIE not in response.cookies
    assert secret not in client.get(url).content.decode()
    assert ApiKey.objects.filter(user=alice).count() == 1


@pytest.mark.django_db
def test_a_forged_or_foreign_cookie_shows_no_secret_and_says_what_to_do(client, alice, bob):
    url = reverse("accounts:api_keys")
    client.force_login(alice)
    alice_cookie = client.post(url, {"name": "alice's", "scopes": ["read"]}).cookies[ISSUED_KEY_COOKIE].value
    alice_key = ApiKey.objects.get(user=alice)

    client.cookies[ISSUED_KEY_COOKIE] = f"{alice_key.pk}:lin_{alice_key.prefix}_forged"  # unsigned
    response = client.get(url)
    text = response.content.decode()
    assert 'id="new-key-secret"' not in text and "forged" not in text
    assert "can no longer be shown" in text and "Revoke that key and create another" in text
    assert response.cookies[ISSUED_KEY_COOKIE]["max-age"] == 0

    client.force_login(bob)  # alice's signed cookie, presented by bob: signed for her, so it shows him nothing
    client.cookies[ISSUED_KEY_COOKIE] = alice_cookie
    text = client.get(url).content.decode()
    assert 'id="new-key-secret"' not in text and f"lin_{alice_key.prefix}_" not in text


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_without_javascript_a_reload_after_creating_shows_one_key_and_no_secret(live_server, browser, alice):
    from browser_support import login

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        login(page, live_server, alice)
        page.goto(f"{live_server.url}{reverse('accounts:api_keys')}")
        page.get_by_label("Name").fill("no js")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#new-key-secret")).to_contain_text("lin_")
        assert page.url == f"{live_server.url}{reverse('accounts:api_keys')}"
        page.reload()
        expect(page.locator("tr[data-key-name='no js']")).to_have_count(1)
        expect(page.locator("#new-key-secret")).to_have_count(0)
        assert ApiKey.objects.filter(user=alice).count() == 1
    finally:
        context.close()
