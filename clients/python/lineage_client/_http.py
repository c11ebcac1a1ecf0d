"""HTTP for the SDK: one httpx client with the API key, JSON in and out, streamed bodies both ways, and every
failure turned into the SDK's exceptions (`errors.py`)."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .errors import LineageConnectionError, error_from_response

CHUNK = 256 * 1024
API = "/api/v1"


class Transport:
    def __init__(self, *, base_url: str, api_key: str, timeout: float, user_agent: str,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url
        self._client = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)), transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": user_agent, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            return self._client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise LineageConnectionError(f"The server at {self.base_url} did not answer in time ({type(exc).__name__})"
                                         ": try again, or pass a longer timeout.") from exc
        except httpx.TransportError as exc:
            raise LineageConnectionError(f"Could not reach the server at {self.base_url} ({exc or type(exc).__name__})"
                                         ": check the URL and that the server is running.") from exc

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                content: Any = None, headers: dict | None = None, what: str | None = None) -> Any:
        """The decoded JSON answer (None for an empty one); an error status raises."""
        request = self._client.build_request(method, path, json=json, params=params, content=content, headers=headers)
        response = self._send(request)
        if response.is_error:
            raise error_from_response(response, what=what)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise LineageConnectionError(f"{method} {path} answered {response.status_code} with something that is not "
                                         f"JSON: is {self.base_url} a Lineage server?") from exc

    @contextmanager
    def stream(self, method: str, path: str, *, params: dict | None = None, what: str | None = None
               ) -> Iterator[httpx.Response]:
        """A response whose body is read in chunks; an error status raises before anything is yielded."""
        request = self._client.build_request(method, path, params=params, headers={"Accept": "*/*"})
        response = self._send(request, stream=True)
        try:
            if response.is_error:
                response.read()
                raise error_from_response(response, what=what)
            yield response
        except httpx.TransportError as exc:
            raise LineageConnectionError(f"The connection to {self.base_url} broke during the download ({exc}): "
                                         "try again.") from exc
        finally:
            response.close()

    def pages(self, path: str, *, params: dict | None = None, what: str | None = None,
              page_size: int = 100) -> Iterator[dict]:
        """Every result of a paginated list, one page at a time. Page numbers rather than the `next` links, so
        the key only ever goes to `base_url`, whatever host the server thinks it has."""
        page = 1
        while True:
            body = self.request("GET", path, params={**(params or {}), "page": page, "page_size": page_size},
                                what=what)
            yield from body.get("results", [])
            if not body.get("next"):
                return
            page += 1


def multipart_file(path: Path, *, field: str = "file", on_bytes: Callable[[int], None] | None = None
                   ) -> tuple[dict[str, str], Iterator[bytes]]:
    """(headers, body) of a multipart/form-data request holding one file, streamed from disk with a
    Content-Length (Django reads no chunked request bodies), calling `on_bytes(n)` as chunks go out."""
    size = path.stat().st_size
    boundary = f"lineage-{secrets.token_hex(16)}"
    # As browsers do (HTML's form encoding): the name is UTF-8, quotes and line breaks percent-encoded.
    name = path.name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                if on_bytes:
                    on_bytes(len(chunk))
                yield chunk
        yield tail

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
               "Content-Length": str(len(head) + size + len(tail))}
    return headers, body()


class AtomicFile:
    """A download target written under a temporary name and renamed into place only when `commit()`ed, so a
    failed or unverified download never leaves a file that looks complete. Hashes what it writes."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.partial = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._handle = None

    def __enter__(self) -> AtomicFile:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.partial.open("wb")
        return self

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def flush(self) -> None:
        self._handle.flush()

    def commit(self) -> None:
        self._handle.close()
        os.replace(self.partial, self.target)

    def __exit__(self, *exc_info) -> None:
        if not self._handle.closed:
            self._handle.close()
        if self.partial.exists():
            self.partial.unlink()
