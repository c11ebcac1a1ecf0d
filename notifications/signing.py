"""Webhook signatures, as Stripe does them: HMAC-SHA256 of `<timestamp>.<body>` with the webhook's
secret, sent as `X-Lineage-Signature: t=<timestamp>,v1=<hex>`. Plain Python (no Django): the receiver's
side of it is the recipe in docs/notifications.md, which the tests run as it is written there.

The timestamp is signed with the body so that a captured request cannot be replayed later: receivers
refuse signatures older than a few minutes.
"""

import hashlib
import hmac
import json
import secrets

SIGNATURE_HEADER = "X-Lineage-Signature"
SECRET_PREFIX = "whsec_"


def secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def payload_bytes(payload: dict) -> bytes:
    """The body as sent: compact, keys sorted, so every attempt of a delivery sends the same bytes."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    return f"t={int(timestamp)},v1={signature(secret=secret, timestamp=timestamp, body=body)}"
