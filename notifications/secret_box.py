"""Webhook signing secrets encrypted at rest. Plain Python, standard library only (no Django): `seal` and
`unseal` take the key as an argument; `notifications.models.Webhook.secret` passes
`settings.NOTIFICATIONS_SECRET_KEY` (by default derived from `SECRET_KEY` by `key_from_secret_key`). A new key
is taken into use with `manage.py notifications_rotate_secret_key`, which re-encrypts every stored secret.

A delivery is signed with the secret itself (HMAC needs it, a hash of it would not do), so the secret is
encrypted rather than hashed: a copy of the database alone no longer lets anyone forge events.

`cryptography` (Fernet) is not among this project's dependencies, so the construction is the standard
encrypt-then-MAC one built from HMAC-SHA256 alone:

* two keys from the configured key string: `master = SHA-256(label || key)`,
  `enc = HMAC(master, "enc")`, `mac = HMAC(master, "mac")`;
* a fresh random 16-byte nonce per seal;
* keystream block i = `HMAC(enc, nonce || i)` (HMAC as a PRF in counter mode), XORed with the plaintext;
* tag = `HMAC(mac, version || nonce || ciphertext)`, checked in constant time before anything is decrypted.

Stored as `wse1:` + unpadded base64url of `nonce || ciphertext || tag`: 132 characters for a 49-character
secret.
"""

import base64
import hashlib
import hmac
import os

PREFIX = "wse1:"
NONCE_BYTES = 16
TAG_BYTES = 32
_LABEL = b"lineage.notifications.secret-box.v1\x00"


class SecretBoxError(ValueError):
    """A stored secret that cannot be read back: not sealed, damaged, or sealed with another key."""


def _keys(key: str) -> tuple[bytes, bytes]:
    if not isinstance(key, str) or not key:
        raise SecretBoxError("No encryption key: set NOTIFICATIONS_SECRET_KEY (or SECRET_KEY, its default's source).")
    master = hashlib.sha256(_LABEL + key.encode("utf-8")).digest()
    return hmac.new(master, b"enc", hashlib.sha256).digest(), hmac.new(master, b"mac", hashlib.sha256).digest()


def _keystream(enc_key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (length + 31) // 32
    return b"".join(hmac.new(enc_key, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
                    for i in range(blocks))[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _tag(mac_key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return hmac.new(mac_key, PREFIX.encode("ascii") + nonce + ciphertext, hashlib.sha256).digest()


def key_from_secret_key(secret_key: str) -> str:
    """The default `NOTIFICATIONS_SECRET_KEY`: derived from Django's `SECRET_KEY` (lineage/settings.py uses this),
    so `notifications_rotate_secret_key --old-key-is-secret-key` can derive the key of an old `SECRET_KEY`."""
    return hmac.new(secret_key.encode("utf-8"), b"lineage.notifications.secret-key", hashlib.sha256).hexdigest()


def is_sealed(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(plaintext: str, *, key: str, nonce: bytes | None = None) -> str:
    """`plaintext` encrypted and authenticated with `key` (`nonce`: for tests only; random otherwise)."""
    enc_key, mac_key = _keys(key)
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"The nonce must be {NONCE_BYTES} bytes.")
    data = plaintext.encode("utf-8")
    ciphertext = _xor(data, _keystream(enc_key, nonce, len(data)))
    token = base64.urlsafe_b64encode(nonce + ciphertext + _tag(mac_key, nonce, ciphertext)).rstrip(b"=")
    return PREFIX + token.decode("ascii")


def unseal(token: str, *, key: str) -> str:
    """The plaintext `seal` was given. Raises `SecretBoxError` when `token` was not sealed, was changed, or
    was sealed with another key (the two cannot be told apart, by design)."""
    if not is_sealed(token):
        raise SecretBoxError("The stored value is not an encrypted secret.")
    body = token[len(PREFIX):]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except ValueError as exc:  # binascii.Error included
        raise SecretBoxError("The encrypted secret is damaged (not base64).") from exc
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SecretBoxError("The encrypted secret is damaged (too short).")
    nonce, ciphertext, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
    enc_key, mac_key = _keys(key)
    if not hmac.compare_digest(tag, _tag(mac_key, nonce, ciphertext)):
        raise SecretBoxError("The encrypted secret does not match the key: it was encrypted with another "
                             "NOTIFICATIONS_SECRET_KEY (or SECRET_KEY), or it was changed.")
    try:
        return _xor(ciphertext, _keystream(enc_key, nonce, len(ciphertext))).decode("utf-8")
    except UnicodeDecodeError as exc:  # cannot happen for a token that authenticates; kept for the type
        raise SecretBoxError("The encrypted secret is damaged.") from exc
