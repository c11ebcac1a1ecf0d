"""`Lineage`: the SDK's entry point, one object per server and API key.

    from lineage_client import Lineage

    lineage = Lineage()                       # LINEAGE_URL / LINEAGE_API_KEY, or `lineage login`'s file
    lineage.datanets.upload("support-tickets", "rows.csv", wait=True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from . import __version__, config
from ._http import API, Transport
from ._waiting import Backoff
from .datanets import DatanetsAPI
from .errors import WaitTimeoutError
from .fine_tunes import FineTunesAPI
from .models import ModelsAPI
from .types import ChatAnswer, Earnings, Me, Receipt


class ReceiptsAPI:
    def __init__(self, client: Lineage) -> None:
        self._http = client._http

    def get(self, receipt_id: str, *, wait_s: float = 30.0) -> Receipt:
        """An attribution receipt: which training rows and contributors an answer is attributed to. An answer
        carries its receipt id at once and the attribution worker stores the receipt seconds later (the
        server answers 202 `receipt_pending` meanwhile): this waits up to `wait_s` seconds for it, then raises
        `WaitTimeoutError`."""
        deadline = time.monotonic() + wait_s
        while True:
            data = self._http.request("GET", f"{API}/attributions/{receipt_id}/", what=f"receipt “{receipt_id}”")
            if not (isinstance(data, dict) and data.get("code") == "receipt_pending"):
                return Receipt.from_api(data)
            if time.monotonic() >= deadline:
                raise WaitTimeoutError(f"Receipt {receipt_id} is still being computed after {wait_s:.0f} s; "
                                       "ask again later (the answer and its fee are recorded).", result=data)
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


class EarningsAPI:
    def __init__(self, client: Lineage) -> None:
        self._http = client._http

    def list(self, *, page_size: int = 500) -> Earnings:
        """Your earnings: totals (in base units), and every share of an answer's fee, newest first. The server
        sends the shares a page at a time, with the totals on each page; this follows the pages (by number, so
        the key only goes to `base_url`) and returns them all. Earnings that arrive meanwhile push older rows
        onto later pages, so a row can come twice: each is kept once (by its `id`), and none is missed. The
        totals are the first page's."""
        first: dict | None = None
        items: list[dict] = []
        seen: set = set()
        page = 1
        while True:
            body = self._http.request("GET", f"{API}/rewards/earnings/", params={"page": page, "page_size": page_size})
            first = first if first is not None else body
            for item in body.get("results", body.get("items")) or []:  # `items`: a server from before the pages
                key = item.get("id")
                if key is None or key not in seen:
                    seen.add(key)
                    items.append(item)
            if not body.get("next"):
                break
            page += 1
        summary = {key: value for key, value in first.items() if key not in ("next", "previous", "items")}
        return Earnings.from_api({**summary, "count": len(items), "results": items})  # one page holding them all


class Lineage:
    """A client for one Lineage server.

    `base_url` and `api_key` default to `LINEAGE_URL` / `LINEAGE_API_KEY`, then to the file `lineage login`
    writes (see `lineage_client.config`). `timeout` is per request, in seconds. `backoff` sets how waits poll;
    `sleep` is what they wait with (swap it for tests or an event loop's own)."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 config_file: str | Path | None = None, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None) -> None:
        settings = config.resolve(base_url, api_key, config_file=config_file)
        self.base_url, self.key_source = settings.url, settings.key_source
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self._http = Transport(base_url=settings.url, api_key=settings.api_key, timeout=timeout,
                               user_agent=f"lineage-client/{__version__}", transport=transport)
        self.datanets = DatanetsAPI(self)
        self.fine_tunes = FineTunesAPI(self)
        self.models = ModelsAPI(self)
        self.receipts = ReceiptsAPI(self)
        self.earnings = EarningsAPI(self)

    def __repr__(self) -> str:
        return f"Lineage({self.base_url!r})"

    def me(self) -> Me:
        """Who the key belongs to, and its scopes: a cheap way to check a key."""
        return Me.from_api(self._http.request("GET", f"{API}/me/"))

    def chat(self, model: str, messages: str | list[dict[str, str]], **parameters: Any) -> ChatAnswer:
        """One answer from `/v1/chat/completions` (scope `infer`): `messages` is the OpenAI list of
        {role, content}, or one string for a single user message. Returns the answer's text and its receipt
        id (and fee, inference id, and a classifier's label and probabilities). Other OpenAI parameters
        (temperature, max_completion_tokens, stop, seed, ...) pass through; streaming is not offered here."""
        if parameters.get("stream"):
            raise TypeError("chat() returns one whole answer; use an OpenAI client for streaming.")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        body = {"model": model, "messages": list(messages), **parameters}
        return ChatAnswer.from_api(self._http.request("POST", "/v1/chat/completions", json=body))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Lineage:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
