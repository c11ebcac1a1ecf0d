"""Model versions: the card and lineage, deploy and undeploy, the price per answer (given in OPEN, sent in base
units), and the adapter download checked against the SHA-256 the server sends with it."""

from __future__ import annotations

import base64
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from ._http import API, AtomicFile
from ._waiting import Progress
from .amounts import open_to_base_units
from .errors import IntegrityError, InvalidAmountError
from .types import Download, ModelVersion

if TYPE_CHECKING:
    from .client import Lineage


class ModelsAPI:
    def __init__(self, client: Lineage) -> None:
        self._http = client._http

    @staticmethod
    def _what(slug: str) -> str:
        return f"model “{slug}”"

    def get(self, slug: str) -> ModelVersion:
        """A model version with its card (metrics, rows trained on) and lineage (the Datanet versions it was
        trained on). A model that is not deployed is its owner's alone."""
        return ModelVersion.from_api(self._http.request("GET", f"{API}/models/{slug}/", what=self._what(slug)))

    def list(self, *, mine: bool = False) -> list[ModelVersion]:
        params = {"mine": "true"} if mine else None
        return [ModelVersion.from_api(m) for m in self._http.pages(f"{API}/models/", params=params)]

    def deploy(self, slug: str) -> ModelVersion:
        """Serve the model on `/v1` (owner; scope `train`). A paid model whose attribution index is not ready
        yet raises `ConflictError` (`index_not_ready`)."""
        return ModelVersion.from_api(self._http.request("POST", f"{API}/models/{slug}/deploy/", what=self._what(slug)))

    def undeploy(self, slug: str) -> ModelVersion:
        return ModelVersion.from_api(self._http.request("POST", f"{API}/models/{slug}/undeploy/",
                                                        what=self._what(slug)))

    def set_price(self, slug: str, price: str | int | Decimal | None = None, *, base_units: int | None = None
                  ) -> ModelVersion:
        """Set the price per answer: `price` in OPEN ("0.05", a Decimal or an int; converted exactly), or
        `base_units` (1 OPEN = 10**18) directly. 0 is free."""
        if (price is None) == (base_units is None):
            raise TypeError("Give either price (in OPEN) or base_units, not both and not neither.")
        if price is not None:
            units = open_to_base_units(price)
        elif isinstance(base_units, int) and not isinstance(base_units, bool) and base_units >= 0:
            units = base_units
        else:
            raise InvalidAmountError(f"base_units is a whole number from 0, not {base_units!r}.")
        return self.update(slug, price_per_inference=units)

    def update(self, slug: str, *, price_per_inference: int | None = None, allow_download: bool | None = None,
               description: str | None = None) -> ModelVersion:
        """Change the owner's settings; `price_per_inference` in base units."""
        body = {k: v for k, v in {"allow_download": allow_download, "description": description}.items()
                if v is not None}
        if price_per_inference is not None:
            body["price_per_inference"] = str(int(price_per_inference))
        return ModelVersion.from_api(self._http.request("PATCH", f"{API}/models/{slug}/", json=body,
                                                        what=self._what(slug)))

    def download_adapter(self, slug: str, path: str | Path | None = None, *, progress: bool = True) -> Download:
        """Download the peft adapter (a zip; the owner, or anyone when the owner allows downloads), streamed,
        and keep it only if its SHA-256 is the one the server sent (`X-Content-SHA256`, and `Repr-Digest`
        when present). `path` may be a directory."""
        target = Path(path) if path else Path(f"{slug}-adapter.zip")
        if target.is_dir():
            target = target / f"{slug}-adapter.zip"
        with self._http.stream("GET", f"{API}/models/{slug}/adapter/", what=self._what(slug)) as response, \
                AtomicFile(target) as out:
            expected = response.headers.get("x-content-sha256", "").lower()
            if not expected:
                raise IntegrityError("The server sent the adapter without its X-Content-SHA256, so it cannot be "
                                     "checked; nothing was kept.")
            length = response.headers.get("content-length")
            with Progress(enabled=progress, desc=target.name, total=int(length) if length else None, unit="B",
                          unit_scale=True) as bar:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    bar.update(len(chunk))
            digest = out.sha256.hexdigest()
            if digest != expected:
                raise IntegrityError(f"The adapter's SHA-256 is {digest[:16]}…, not the {expected[:16]}… the server "
                                     "sent; nothing was kept. Try again.")
            repr_digest = response.headers.get("repr-digest", "")
            if repr_digest.startswith("sha-256=:"):
                sent = repr_digest.removeprefix("sha-256=:").rstrip(":")
                if base64.b64decode(sent) != out.sha256.digest():
                    raise IntegrityError("The adapter does not match the server's Repr-Digest; nothing was kept.")
            out.commit()
        return Download(target, out.size, digest, "SHA-256 matches X-Content-SHA256 and Repr-Digest")
