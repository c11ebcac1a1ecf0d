"""Sign-In with Ethereum (EIP-4361): link a wallet to a Lineage user without a password.

The server issues a one-time nonce, the wallet signs the human-readable message below with
``personal_sign`` (EIP-191), and the server checks the signature, its own domain, the nonce and the
validity window. Parsing is strict (exact line layout, EIP-55 address) because a lenient parser is
how phishing pages get a signature for one site accepted by another.

Only externally owned accounts are verified (ecrecover); smart-contract wallets (EIP-1271) would
need an ``isValidSignature`` call on chain.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct

from .hashing import checksum_address

_HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_ALPHANUMERIC = string.ascii_letters + string.digits


class SiweError(ValueError):
    """A SIWE message was malformed or refused; ``reason`` is a stable code for logs and UI."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SiweMessage:
    """The fields of an EIP-4361 message; :meth:`to_text` renders exactly what the wallet signs."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default_factory=tuple)
    version: str = "1"

    def __post_init__(self) -> None:
        if self.address != checksum_address(self.address):
            raise SiweError("malformed", f"address must be EIP-55 checksummed: {self.address}")
        if not _NONCE.fullmatch(self.nonce):
            raise SiweError("malformed", "nonce must be at least 8 letters or digits")
        if self.statement is not None and "\n" in self.statement:
            raise SiweError("malformed", "statement must be a single line")
        for moment in (self.issued_at, self.expiration_time, self.not_before):
            if moment is not None and moment.tzinfo is None:
                raise SiweError("malformed", "timestamps must be timezone-aware")

    def to_text(self) -> str:
        # An empty line, the optional statement, another empty line: without a statement the address
        # is followed by two empty lines (EIP-4361's ABNF; what the reference `siwe` library emits).
        lines = [f"{self.domain}{_HEADER_SUFFIX}", self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines.append("")
        lines += [f"URI: {self.uri}", f"Version: {self.version}", f"Chain ID: {self.chain_id}",
                  f"Nonce: {self.nonce}", f"Issued At: {_format_time(self.issued_at)}"]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_format_time(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_format_time(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines += ["Resources:", *(f"- {resource}" for resource in self.resources)]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> SiweMessage:
        """Parse a message rendered per EIP-4361; anything out of place raises :class:`SiweError`."""
        lines = text.split("\n")
        if not lines[0].endswith(_HEADER_SUFFIX) or len(lines) < 9:
            raise SiweError("malformed", "not a Sign-In with Ethereum message")
        domain = lines[0][: -len(_HEADER_SUFFIX)]
        address = lines[1]
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
            raise SiweError("malformed", f"bad address line {address!r}")
        if lines[2] != "":
            raise SiweError("malformed", "expected an empty line after the address")
        rest = lines[3:]
        statement = None
        if rest[0] != "":
            statement = rest[0]
            if len(rest) < 2 or rest[1] != "":
                raise SiweError("malformed", "expected an empty line after the statement")
        rest = rest[2:] if statement is not None else rest[1:]
        fields = _take_fields(rest, ["URI", "Version", "Chain ID", "Nonce", "Issued At"], required=True)
        optional = _take_fields(rest, ["Expiration Time", "Not Before", "Request ID"], required=False)
        resources: list[str] = []
        if rest and rest[0] == "Resources:":
            rest.pop(0)
            while rest and rest[0].startswith("- "):
                resources.append(rest.pop(0)[2:])
        if rest:
            raise SiweError("malformed", f"unexpected line {rest[0]!r}")
        if fields["Version"] != "1":
            raise SiweError("malformed", f"unsupported version {fields['Version']!r}")
        if not fields["Chain ID"].isdigit():
            raise SiweError("malformed", f"bad chain id {fields['Chain ID']!r}")
        return cls(
            domain=domain, address=address, uri=fields["URI"], chain_id=int(fields["Chain ID"]),
            nonce=fields["Nonce"], issued_at=_parse_time(fields["Issued At"]), statement=statement,
            expiration_time=_parse_time(optional["Expiration Time"]) if "Expiration Time" in optional else None,
            not_before=_parse_time(optional["Not Before"]) if "Not Before" in optional else None,
            request_id=optional.get("Request ID"), resources=tuple(resources),
        )


def generate_nonce(length: int = 17) -> str:
    """A fresh random alphanumeric nonce (EIP-4361 asks for at least 8 characters)."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def verify_sign_in(message_text: str, signature: str | bytes, *, expected_domain: str, expected_nonce: str,
                   expected_chain_id: int | None = None, now: datetime | None = None) -> SiweMessage:
    """Check a signed SIWE message and return it; raise :class:`SiweError` with the reason otherwise.

    ``expected_nonce`` is the one the server issued for this session (single use: the caller must
    discard it afterwards so a captured signature cannot be replayed).
    """
    message = SiweMessage.parse(message_text)
    moment = now or datetime.now(UTC)
    if message.domain != expected_domain:
        raise SiweError("domain_mismatch", f"message is for {message.domain!r}, not {expected_domain!r}")
    if not secrets.compare_digest(message.nonce, expected_nonce):
        raise SiweError("nonce_mismatch", "the nonce is not the one issued for this sign-in")
    if expected_chain_id is not None and message.chain_id != expected_chain_id:
        raise SiweError("chain_mismatch", f"chain {message.chain_id}, expected {expected_chain_id}")
    if message.expiration_time is not None and moment >= message.expiration_time:
        raise SiweError("expired", f"expired at {_format_time(message.expiration_time)}")
    if message.not_before is not None and moment < message.not_before:
        raise SiweError("not_yet_valid", f"valid from {_format_time(message.not_before)}")
    try:
        signer = Account.recover_message(encode_defunct(text=message_text), signature=signature)
    except Exception as error:  # eth-keys raises several types for malformed signatures
        raise SiweError("bad_signature", f"cannot recover a signer: {error}") from error
    if signer != message.address:
        raise SiweError("address_mismatch", f"signed by {signer}, message names {message.address}")
    return message


def _take_fields(lines: list[str], names: list[str], *, required: bool) -> dict[str, str]:
    # Fields must appear in EIP-4361's order; consumes them from the front of ``lines``.
    found: dict[str, str] = {}
    for name in names:
        prefix = f"{name}: "
        if lines and lines[0].startswith(prefix):
            found[name] = lines.pop(0)[len(prefix):]
        elif required:
            raise SiweError("malformed", f"missing {name!r} line")
    return found


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise SiweError("malformed", f"bad RFC 3339 time {text!r}") from error
    if moment.tzinfo is None:
        raise SiweError("malformed", f"time without a timezone: {text!r}")
    return moment
