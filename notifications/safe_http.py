"""Posting to a URL that a user typed, without letting it reach the servers behind Lineage (SSRF).

Plain Python (no Django). Outside development a webhook must use https and its host must resolve only to
public addresses: loopback, private, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT,
multicast and reserved ranges are refused. The check is made again at every delivery, on the addresses
the request then connects to: the connection goes to the address that was checked (the URL's host name
is still sent as `Host` and as the TLS server name, so certificates are verified against it), which
closes the gap where a name resolves to a public address when checked and a private one when used
(DNS rebinding). Redirects are not followed (one could point anywhere) and proxies from the environment
are ignored (they would connect on our behalf).
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

EXCERPT_BYTES = 1000  # of the endpoint's answer, kept in the delivery log


class UnsafeDestination(ValueError):
    """The URL points somewhere Lineage will not post to; the message says why and what to do."""


class DeliveryError(Exception):
    """The request did not get an answer (refused, timed out, TLS failure); the message says which."""


@dataclass(frozen=True)
class PostResult:
    status_code: int
    excerpt: str


def _literal_address(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_is_public(address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def resolve(host: str, port: int) -> list:
    """The addresses a host name resolves to (a literal address is itself)."""
    literal = _literal_address(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def url_problem(url: str, *, allow_private: bool, check_addresses: bool = True) -> str | None:
    """Why Lineage will not post to this URL (a sentence saying what to do), or None when it will.
    `allow_private` (development and tests) accepts http and local addresses; `check_addresses` resolves
    the host now (a delivery checks again, whatever was checked here)."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        return "The URL is not valid (check the port: a number from 1 to 65535)."
    if parts.scheme not in ("http", "https"):
        return "Use an https:// URL."
    if not parts.hostname:
        return "The URL has no host name: write it as https://example.org/path."
    if parts.username or parts.password:
        return "Leave user names and passwords out of the URL: your endpoint should check the signature instead."
    if allow_private:
        return None
    if parts.scheme != "https":
        return "Use https://: events are only sent over an encrypted connection."
    if not check_addresses:
        return None
    try:
        addresses = resolve(parts.hostname, port or 443)
    except (OSError, UnicodeError):
        return f"The host {parts.hostname} could not be found; check the spelling of the URL."
    unsafe = [a for a in addresses if not address_is_public(a)]
    if unsafe:
        return (f"The host {parts.hostname} points at a private, loopback or link-local address ({unsafe[0]}); "
                "webhooks can only be sent to servers reachable on the public internet.")
    return None


def post_json(url: str, body: bytes, headers: dict, *, timeout_s: float, allow_private: bool) -> PostResult:
    """POST `body` to `url` and return the answer's status and the start of its body. Raises
    `UnsafeDestination` (not sent) or `DeliveryError` (sent, or tried, without an answer)."""
    problem = url_problem(url, allow_private=allow_private, check_addresses=False)
    if problem:
        raise UnsafeDestination(problem)
    parts = urlsplit(url.strip())
    default_port = 443 if parts.scheme == "https" else 80
    try:
        addresses = resolve(parts.hostname, parts.port or default_port)
    except (OSError, UnicodeError) as exc:
        raise DeliveryError(f"the host {parts.hostname} could not be resolved ({exc})") from exc
    if not allow_private:
        unsafe = [a for a in addresses if not address_is_public(a)]
        if unsafe:
            raise UnsafeDestination(f"the host {parts.hostname} now points at a non-public address ({unsafe[0]}); "
                                    "nothing was sent")
    address = addresses[0]
    host_text = f"[{address}]" if address.version == 6 else str(address)
    target = urlunsplit((parts.scheme, f"{host_text}:{parts.port or default_port}", parts.path or "/", parts.query, ""))
    hostname = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    host_header = hostname + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" and _literal_address(parts.hostname) is None else {}
    deadline = time.monotonic() + timeout_s
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            with client.stream("POST", target, content=body, headers={**headers, "Host": host_header},
                               extensions=extensions) as response:
                excerpt = b""
                for chunk in response.iter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= EXCERPT_BYTES or time.monotonic() > deadline:
                        break
                return PostResult(response.status_code, excerpt[:EXCERPT_BYTES].decode("utf-8", "replace"))
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"no answer within {timeout_s:g} s ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise DeliveryError(f"the connection failed: {exc or type(exc).__name__}") from exc
