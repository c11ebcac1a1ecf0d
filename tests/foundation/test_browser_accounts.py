"""A newcomer in a real browser: sign up, verify the email from the test mailbox, log in, create an
API key, see it listed, revoke it, log out."""

import re

import pytest
from browser_support import assert_accessible
from playwright.sync_api import expect

from accounts.models import ApiKey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-and-unusual-passphrase"


def test_signup_verify_login_create_and_revoke_key(live_server, page, mailoutbox, settings, screenshot):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email = "newcomer@example.org"

    page.goto(f"{live_server.url}/accounts/signup/")
    assert_accessible(page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again):", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign Up", re.I)).click()
    expect(page.get_by_role("heading", name=re.compile("Verify Your Email Address", re.I))).to_be_visible()
    assert_accessible(page)

    # Mandatory verification: logging in before confirming is refused.
    assert len(mailoutbox) == 1
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mailoutbox[0].body).group(0)
    page.goto(link.replace("http://testserver", live_server.url))
    assert_accessible(page)
    page.get_by_role("button", name=re.compile("Confirm", re.I)).click()

    page.goto(f"{live_server.url}/accounts/login/")
    assert_accessible(page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    expect(page.locator(".account-menu summary")).to_be_visible()

    page.goto(f"{live_server.url}/account/keys/")
    assert_accessible(page)
    page.get_by_label("Name").fill("ci uploads")
    page.get_by_label(re.compile(r"^\s*contribute:")).check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret")
    expect(secret).to_contain_text("lin_")
    row = page.locator("tr[data-key-name='ci uploads']")
    expect(row).to_contain_text("contribute, read")
    expect(row).to_contain_text("active")
    assert_accessible(page)  # the new key's secret shown once, the key listed
    screenshot("api-keys")

    key = ApiKey.objects.get(name="ci uploads")
    assert key.secret_hash not in secret.inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("tr[data-key-name='ci uploads']")).to_contain_text("revoked")
    key.refresh_from_db()
    assert key.revoked_at is not None
    expect(page.locator("#new-key-secret")).to_have_count(0)  # never shown again

    page.locator(".account-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    assert_accessible(page)
