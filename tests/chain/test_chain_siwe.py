"""Sign-In with Ethereum: messages round-trip strictly, valid signatures pass, anything else says why."""

from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from rewards.chain.siwe import SiweError, SiweMessage, generate_nonce, verify_sign_in

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WALLET = Account.from_key(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
OTHER_WALLET = Account.from_key(b"\x02" * 32)


def make_message(**overrides) -> SiweMessage:
    fields = dict(domain="lineage.example", address=WALLET.address, uri="https://lineage.example/login",
                  chain_id=8453, nonce="k3Hd82JsQp0aZ1", issued_at=NOW, statement="Link this wallet to Lineage.",
                  expiration_time=NOW + timedelta(minutes=10))
    return SiweMessage(**(fields | overrides))


def sign(text: str, wallet=WALLET) -> str:
    return "0x" + bytes(wallet.sign_message(encode_defunct(text=text)).signature).hex()


def verify(text: str, signature: str, **overrides):
    expected = dict(expected_domain="lineage.example", expected_nonce="k3Hd82JsQp0aZ1", expected_chain_id=8453,
                    now=NOW + timedelta(minutes=1))
    return verify_sign_in(text, signature, **(expected | overrides))


def test_message_text_follows_eip_4361():
    assert make_message(resources=("https://lineage.example/terms",), request_id="r-1").to_text() == (
        "lineage.example wants you to sign in with your Ethereum account:\n"
        f"{WALLET.address}\n\nLink this wallet to Lineage.\n\n"
        "URI: https://lineage.example/login\nVersion: 1\nChain ID: 8453\nNonce: k3Hd82JsQp0aZ1\n"
        "Issued At: 2026-11-24T12:00:00Z\nExpiration Time: 2026-11-24T12:10:00Z\nRequest ID: r-1\n"
        "Resources:\n- https://lineage.example/terms")


@pytest.mark.parametrize("message", [
    make_message(),
    make_message(statement=None, expiration_time=None),
    make_message(not_before=NOW, resources=("ipfs://bafy", "https://a.example/b")),
])
def test_parse_round_trips(message):
    assert SiweMessage.parse(message.to_text()) == message


def test_a_valid_signature_verifies():
    text = make_message().to_text()
    assert verify(text, sign(text)).address == WALLET.address


@pytest.mark.parametrize(("reason", "overrides"), [
    ("nonce_mismatch", {"expected_nonce": "someOtherNonce1"}),
    ("domain_mismatch", {"expected_domain": "evil.example"}),
    ("expired", {"now": NOW + timedelta(minutes=10)}),
    ("chain_mismatch", {"expected_chain_id": 1}),
])
def test_wrong_context_is_refused_with_a_reason(reason, overrides):
    text = make_message().to_text()
    with pytest.raises(SiweError) as refused:
        verify(text, sign(text), **overrides)
    assert refused.value.reason == reason


def test_a_signature_by_another_address_is_refused():
    text = make_message().to_text()
    with pytest.raises(SiweError) as refused:
        verify(text, sign(text, OTHER_WALLET))
    assert refused.value.reason == "address_mismatch"
    assert OTHER_WALLET.address in str(refused.value)


def test_not_yet_valid_and_garbage_signatures_are_refused():
    text = make_message(not_before=NOW + timedelta(hours=1), expiration_time=None).to_text()
    with pytest.raises(SiweError, match="not_yet_valid"):
        verify(text, sign(text))
    text = make_message().to_text()
    with pytest.raises(SiweError, match="bad_signature"):
        verify(text, "0x" + "00" * 65)


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace(WALLET.address, WALLET.address.lower()),  # not EIP-55
    lambda t: t.replace("Version: 1", "Version: 2"),
    lambda t: t.replace("\nNonce: k3Hd82JsQp0aZ1", ""),
    lambda t: t + "\nExtra: line",
    lambda t: t.replace("Issued At: 2026-11-24T12:00:00Z", "Issued At: 2026-11-24T12:00:00"),
    lambda t: t.replace(" wants you to sign in", " would like you to sign in"),
], ids=["lowercase-address", "version", "missing-nonce", "extra-line", "naive-time", "header"])
def test_strict_parsing_refuses_malformed_messages(mangle):
    with pytest.raises(SiweError) as refused:
        SiweMessage.parse(mangle(make_message().to_text()))
    assert refused.value.reason == "malformed"


def test_generated_nonces_are_valid_and_fresh():
    nonces = {generate_nonce() for _ in range(50)}
    assert len(nonces) == 50
    for nonce in nonces:
        make_message(nonce=nonce)  # accepted by the message's own validation
