"""Payout wallets: a one-time Sign-In with Ethereum message (`wallet_nonce_issue`), linking the wallet that
signed it (`wallet_link`, a change takes effect after `WALLET_CHANGE_DELAY_HOURS`) and which address
pays each user at a given moment (`wallets_effective_at`, read by the epoch freeze).
"""

from datetime import UTC, timedelta
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from rewards.chain import checksum_address
from rewards.chain.siwe import SiweError, SiweMessage, generate_nonce, verify_sign_in

from ..models import Wallet, WalletNonce


def siwe_domain() -> str:
    return settings.REWARDS_SIWE_DOMAIN or urlparse(settings.SITE_URL).netloc


def wallet_nonce_issue(*, user, address: str, now=None) -> WalletNonce:
    """Issue a one-time SIWE message for `address`; the wallet signs it with personal_sign."""
    try:
        address = checksum_address((address or "").strip())
    except ValueError as exc:
        raise ValidationError({"address": f"Not a valid Ethereum address: {exc}"}) from exc
    now = now or timezone.now()
    expires = now + timedelta(minutes=settings.REWARDS_SIWE_TTL_MINUTES)
    nonce = generate_nonce()
    message = SiweMessage(
        domain=siwe_domain(), address=address, uri=settings.SITE_URL, chain_id=settings.CHAIN_ID, nonce=nonce,
        issued_at=now.astimezone(UTC).replace(microsecond=0), expiration_time=expires.astimezone(UTC).replace(microsecond=0),
        statement="Link this wallet to your Lineage account to receive OPEN rewards.",
    )
    return WalletNonce.objects.create(user=user, nonce=nonce, message=message.to_text(), expires_at=expires)


SIWE_MESSAGES = {
    "domain_mismatch": "This message was made for another site.",
    "nonce_mismatch": "The nonce does not match the one issued; request a new message.",
    "chain_mismatch": "This message names another chain.",
    "expired": "This sign-in message has expired; request a new one and sign it again.",
    "not_yet_valid": "This sign-in message is not valid yet.",
    "bad_signature": "The signature could not be read; paste the full 0x… signature.",
    "address_mismatch": "The signature was not made by the wallet named in the message.",
    "malformed": "This is not the sign-in message we issued.",
}


def wallet_link(*, user, message: str, signature: str, now=None) -> Wallet:
    """Verify a signed SIWE message and link its wallet. The first wallet takes effect at once; a
    change takes effect after `WALLET_CHANGE_DELAY_HOURS` (epochs closed before that pay the old one)."""
    now = now or timezone.now()
    message = (message or "").replace("\r\n", "\n").strip("\n")
    try:
        parsed = SiweMessage.parse(message)
    except SiweError as exc:
        raise ValidationError({"message": f"{SIWE_MESSAGES['malformed']} ({exc.detail})"}) from exc
    issued = WalletNonce.objects.filter(nonce=parsed.nonce, user=user).first()
    if issued is None or issued.used_at is not None:
        raise ValidationError({"message": "This message's nonce was not issued to you or was already used; "
                                          "request a new message."})
    if issued.message != message:
        raise ValidationError({"message": "The message was changed after it was issued; sign it exactly as shown."})
    if now >= issued.expires_at:
        raise ValidationError({"message": SIWE_MESSAGES["expired"]})
    try:
        verify_sign_in(message, (signature or "").strip(), expected_domain=siwe_domain(), expected_nonce=issued.nonce,
                       expected_chain_id=settings.CHAIN_ID, now=now)
    except SiweError as exc:
        raise ValidationError({"signature": f"{SIWE_MESSAGES.get(exc.reason, 'Refused.')} ({exc.detail})"}) from exc
    address = parsed.address
    with transaction.atomic(durable=True):
        if not WalletNonce.objects.filter(pk=issued.pk, used_at__isnull=True).update(used_at=now):
            raise ValidationError({"message": "This message was already used; request a new one."})
        existing = Wallet.objects.filter(address=address).first()
        if existing is not None:
            if existing.user_id != user.pk:
                raise ValidationError({"message": "This wallet is linked to another account."})
            return existing
        current = Wallet.objects.filter(user=user).order_by("-effective_at").first()
        delay = timedelta(hours=settings.WALLET_CHANGE_DELAY_HOURS) if current else timedelta(0)
        wallet = Wallet.objects.create(user=user, address=address, linked_at=now, effective_at=now + delay)
        audit_record(actor=user, action=AuditAction.REWARDS_WALLET_CHANGE if current else AuditAction.REWARDS_WALLET_LINK, target=wallet,
                     details={"address": address, "previous": current.address if current else None,
                              "effective_at": wallet.effective_at.isoformat()})
    return wallet


def wallets_effective_at(moment) -> dict[int, str]:
    """{user_id: payout address} at `moment` (latest wallet with effective_at <= moment)."""
    chosen: dict[int, tuple] = {}
    for user_id, address, effective in Wallet.objects.filter(effective_at__lte=moment).values_list(
            "user_id", "address", "effective_at"):
        if user_id not in chosen or effective > chosen[user_id][1]:
            chosen[user_id] = (address, effective)
    return {user_id: address for user_id, (address, _) in chosen.items()}
