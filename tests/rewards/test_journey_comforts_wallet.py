"""Issue #22, wallet page comforts: the address field says what an address looks like (0x + 40 hex
characters, checksummed or not), and after a refusal the form comes back with its labels and what was
typed (the address, or the issued message and the pasted signature)."""

import re

import pytest
from browser_support import assert_accessible, login, personal_sign
from eth_account import Account
from playwright.sync_api import expect

from rewards.models import Wallet

WALLET = Account.from_key("0x" + "5a" * 32)


def _bad_checksum(address: str) -> str:
    """The address with the case of its first letter flipped: still 0x + 40 hex, but its EIP-55 checksum fails."""
    i = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1:]


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["0x123", "not an address", "0x" + "g" * 40, _bad_checksum(WALLET.address)])
def test_a_refused_address_comes_back_in_its_labelled_field(client, alice, typed):
    client.force_login(alice)
    html = client.post("/rewards/wallet/", {"action": "prepare", "address": typed}).content.decode()
    assert "Not a valid Ethereum address" in html
    assert '<label for="address">Wallet address</label>' in html
    assert f'value="{typed}"' in html and 'aria-invalid="true"' in html
    assert 'aria-describedby="address-help wallet-errors"' in html
    assert not Wallet.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("address", [WALLET.address, WALLET.address.lower(), "0x" + WALLET.address[2:].upper()])
def test_checksummed_or_not_both_prepare_a_message(client, alice, address):
    client.force_login(alice)
    response = client.post("/rewards/wallet/", {"action": "prepare", "address": address})
    assert WALLET.address in response.context["issued"].message  # named checksummed in the message


@pytest.mark.django_db
def test_a_refused_signature_keeps_the_message_the_signature_and_their_labels(client, alice):
    client.force_login(alice)
    message = client.post("/rewards/wallet/", {"action": "prepare", "address": WALLET.address}).context["issued"].message
    html = client.post("/rewards/wallet/", {"action": "link", "message": message, "signature": "0x1234"}).content.decode()
    assert '<label for="message">Message</label>' in html and '<label for="signature">Signature (0x…)</label>' in html
    assert ">0x1234</textarea>" in html and WALLET.address in html
    assert 'aria-describedby="signature-help wallet-errors" aria-invalid="true"' in html


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_wallet_form_explains_the_format_and_keeps_what_was_typed(live_server, page, alice):
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/rewards/wallet/")
    expect(page.get_by_test_id("address-format")).to_contain_text("0x followed by 40 hexadecimal characters")
    expect(page.get_by_test_id("address-format")).to_contain_text("Checksummed")
    assert_accessible(page)

    # The browser refuses what is not 0x + 40 hex before sending it; a wrong checksum is refused by the server.
    field = page.get_by_label("Wallet address")
    field.fill("0x1234")
    page.get_by_role("button", name="Prepare the message").click()
    assert field.evaluate("input => input.validity.patternMismatch") is True
    typo = _bad_checksum(WALLET.address)
    field.fill(typo)
    page.get_by_role("button", name="Prepare the message").click()
    expect(page.get_by_role("alert")).to_contain_text("bad EIP-55 checksum")
    expect(page.get_by_label("Wallet address")).to_have_value(typo)
    expect(page.get_by_label("Wallet address")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Wallet address", exact=True)).to_be_visible()
    assert_accessible(page)

    # The lower-case form is fine; a bad signature keeps the labelled form, the message and what was pasted.
    page.get_by_label("Wallet address").fill(WALLET.address.lower())
    page.get_by_role("button", name="Prepare the message").click()
    message = page.get_by_label("Message").input_value()
    stranger = personal_sign(Account.from_key("0x" + "13" * 32), message)
    page.get_by_label("Signature").fill(stranger)
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_role("alert")).to_contain_text("not made by the wallet named in the message")
    expect(page.get_by_text("Signature (0x…)")).to_be_visible()
    expect(page.get_by_text("Message", exact=True)).to_be_visible()
    expect(page.get_by_label("Message")).to_have_value(message)
    expect(page.get_by_label("Signature")).to_have_value(stranger)
    assert_accessible(page)
    page.get_by_label("Signature").fill(personal_sign(WALLET, message))
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_test_id("current-wallet")).to_have_text(WALLET.address)
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", Wallet.objects.get(user=alice).address)
