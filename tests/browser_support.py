"""Steps the browser tests and the wallet tests share: logging in and out through the real allauth pages,
and signing a message as a wallet does (EIP-191 personal_sign)."""

import re

from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import expect

PASSWORD = "correct-horse-battery-staple"  # the cast's password (tests/conftest.py)


def login(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    expect(page.locator(".account-menu summary")).to_be_visible()


def logout(page):
    page.locator(".account-menu summary").click()
    page.get_by_role("button", name="Log out").click()


def personal_sign(account, message: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=message), private_key=account.key).signature).hex()
