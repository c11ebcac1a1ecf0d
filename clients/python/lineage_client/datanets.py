"""Datanets: create one, upload a file of rows, wait for its validation, read the rows it refused, publish a
version and download a version with its content checked against the hashes the API gives.

Reviewing rows (accepting or rejecting them) is a curator's work on the site and is not part of the SDK.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._http import API, AtomicFile, multipart_file
from ._waiting import Backoff, Progress, wait_until_finished
from .errors import BadRequestError, IntegrityError, JobFailedError
from .types import Contribution, Datanet, DatanetVersion, Download, RowError

if TYPE_CHECKING:
    from .client import Lineage

FORMATS = {"jsonl": "jsonl", "parquet": "parquet", "csv": "csv"}
# The manifest lists every row id under this key for the server's own use; the manifest file does not hold it.
SERVER_ONLY_MANIFEST_KEYS = ("rows_by_contributor_flat",)
DATA_FILE = "data.parquet"


def canonical_json(value: Any) -> bytes:
    """The encoding Lineage hashes JSON with: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class DatanetsAPI:
    def __init__(self, client: Lineage) -> None:
        self._client = client
        self._http = client._http

    @staticmethod
    def _path(slug: str, rest: str = "") -> str:
        return f"{API}/datanets/{slug}/{rest}"

    @staticmethod
    def _what(slug: str) -> str:
        return f"Datanet “{slug}”"

    # --- Datanets -----------------------------------------------------------------------------------------

    def create(self, name: str, *, task_type: str, labels: list[str] | None = None, slug: str | None = None,
               **settings: Any) -> Datanet:
        """Create a Datanet you own (scope `contribute`). `task_type` is text-classification, instruction or
        text; `labels` are a classification Datanet's labels. Other settings (summary, description, tags,
        licence, visibility, contribution_policy, training_access, metadata_columns, ...) as the API names them."""
        body = {"name": name, "task_type": task_type, "label_set": list(labels or []), **settings}
        if slug:
            body["slug"] = slug
        return Datanet.from_api(self._http.request("POST", f"{API}/datanets/", json=body))

    def get(self, slug: str) -> Datanet:
        return Datanet.from_api(self._http.request("GET", self._path(slug), what=self._what(slug)))

    def list(self, *, query: str = "", task_type: str = "") -> list[Datanet]:
        params = {k: v for k, v in {"q": query, "task_type": task_type}.items() if v}
        return [Datanet.from_api(d) for d in self._http.pages(f"{API}/datanets/", params=params)]

    # --- Contributions ------------------------------------------------------------------------------------

    def upload(self, slug: str, path: str | Path, *, progress: bool = True, wait: bool = False,
               timeout: float | None = None) -> Contribution:
        """Upload a file of rows (CSV, TSV, JSON Lines, Parquet or a document; scope `contribute`), streamed from
        disk with a progress bar over its bytes. The server answers at once and validates in the background:
        `wait=True` waits for that too (see `wait`)."""
        path = Path(path)
        if not path.is_file():
            raise BadRequestError(f"No file at {path}: give the path of the file to upload.", code="no_file")
        self.get(slug)  # an unknown Datanet is a clear 404 now, not a broken upload later
        size = path.stat().st_size
        with Progress(enabled=progress, desc=f"upload {path.name}", total=size, unit="B", unit_scale=True) as bar:
            headers, body = multipart_file(path, on_bytes=bar.update)
            data = self._http.request("POST", self._path(slug, "contributions/"), content=body, headers=headers,
                                      what=self._what(slug))
        contribution = Contribution.from_api(data)
        return self.wait(slug, contribution.id, progress=progress, timeout=timeout) if wait else contribution

    def contribution(self, slug: str, contribution_id: int) -> Contribution:
        data = self._http.request("GET", self._path(slug, f"contributions/{contribution_id}/"),
                                  what=f"contribution {contribution_id} in Datanet “{slug}”")
        return Contribution.from_api(data)

    def wait(self, slug: str, contribution_id: int, *, progress: bool = True, timeout: float | None = None,
             backoff: Backoff | None = None) -> Contribution:
        """Poll until validation is over (rows in review, all done, or the file failed), with a progress bar.
        A failed file raises `JobFailedError` with the server's reason; Ctrl-C stops waiting only
        (`WaitInterrupted`)."""
        with Progress(enabled=progress, desc=f"validate #{contribution_id}", total=100, unit="%") as bar:
            result = wait_until_finished(
                lambda: self.contribution(slug, contribution_id), finished=lambda c: c.finished,
                fingerprint=lambda c: (c.state, c.progress_percent),
                show=lambda c: bar.set(n=c.progress_percent if not c.finished else 100, postfix=c.state),
                describe=lambda c: f"contribution {c.id} is {c.state}, {c.progress_percent}%",
                backoff=backoff or self._client.backoff, timeout=timeout, sleep=self._client.sleep,
            )
        if result.state == "failed":
            raise JobFailedError(f"Contribution {result.id} failed validation: {result.error_message or result.error_code}"
                                 , result=result, code=result.error_code or None)
        return result

    def row_errors(self, slug: str, contribution_id: int) -> Iterator[RowError]:
        """The rows validation refused, with row and line numbers and the reason, in row order."""
        path = self._path(slug, f"contributions/{contribution_id}/errors/")
        for data in self._http.pages(path, what=f"contribution {contribution_id} in Datanet “{slug}”"):
            yield RowError.from_api(data)

    def download_errors_csv(self, slug: str, contribution_id: int, path: str | Path | None = None) -> Download:
        """The refused rows as CSV, each with its content, to fix and upload again."""
        target = Path(path) if path else Path(f"contribution-{contribution_id}-errors.csv")
        route = self._path(slug, f"contributions/{contribution_id}/errors.csv")
        with self._http.stream("GET", route, what=f"contribution {contribution_id} in Datanet “{slug}”") as response, \
                AtomicFile(target) as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
            out.commit()
        return Download(target, out.size, out.sha256.hexdigest(), "not hashed by the server")

    # --- Versions -----------------------------------------------------------------------------------------

    def publish(self, slug: str, *, notes: str = "") -> DatanetVersion:
        """Freeze the accepted rows into a new immutable version (curators and the owner; scope `contribute`)."""
        data = self._http.request("POST", self._path(slug, "versions/"), json={"notes": notes}, what=self._what(slug))
        return DatanetVersion.from_api(data)

    def version(self, slug: str, number: int) -> DatanetVersion:
        data = self._http.request("GET", self._path(slug, f"versions/{number}/"),
                                  what=f"version {number} of Datanet “{slug}”")
        return DatanetVersion.from_api(data)

    def versions(self, slug: str) -> list[DatanetVersion]:
        return [DatanetVersion.from_api(v) for v in self._http.pages(self._path(slug, "versions/"),
                                                                     what=self._what(slug))]

    def download(self, slug: str, number: int, path: str | Path | None = None, *, format: str = "jsonl",
                 progress: bool = True) -> Download:
        """Download a version's rows (streamed) and check them before keeping the file:

        - the manifest the API gives must hash to the version's `manifest_hash` (the version's identity);
        - `parquet`: the file's SHA-256 and size must be the manifest's;
        - `jsonl`: the rows, re-encoded canonically, must hash to the manifest's `rows_sha256`;
        - `csv`: cells that look like formulas are neutralised for spreadsheets, so no hash applies; the row
          count is checked.

        A mismatch raises `IntegrityError` and leaves no file. `path` may be a directory."""
        if format not in FORMATS:
            raise BadRequestError(f"Unknown format “{format}”: use jsonl, parquet or csv.", code="invalid_format")
        version = self.version(slug, number)
        manifest = _checked_manifest(version)
        target = Path(path) if path else Path(f"{slug}-v{number}.{FORMATS[format]}")
        if target.is_dir():
            target = target / f"{slug}-v{number}.{FORMATS[format]}"
        expected_size = manifest["files"][DATA_FILE]["bytes"] if format == "parquet" else None
        rows = _RowHasher() if format == "jsonl" else None
        route = self._path(slug, f"versions/{number}/download/")
        with Progress(enabled=progress, desc=target.name, total=expected_size, unit="B", unit_scale=True) as bar, \
                self._http.stream("GET", route, params={"format": format},
                                  what=f"version {number} of Datanet “{slug}”") as response, AtomicFile(target) as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
                if rows:
                    rows.feed(chunk)
                bar.update(len(chunk))
            verified = _verify(format, manifest, out, rows)
            out.commit()
        return Download(target, out.size, out.sha256.hexdigest(), verified)


def _checked_manifest(version: DatanetVersion) -> dict:
    manifest = dict(version.manifest or {})
    if not manifest:
        raise IntegrityError(f"Version {version.number} of “{version.datanet}” came without its manifest, so its "
                             "content cannot be checked.")
    body = {k: v for k, v in manifest.items() if k not in SERVER_ONLY_MANIFEST_KEYS}
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    if digest != version.manifest_hash:
        raise IntegrityError(f"The manifest of {version.ref} hashes to {digest[:16]}…, not to the version's hash "
                             f"{version.manifest_hash[:16]}…: it is not the manifest this version was published with.")
    return manifest


class _RowHasher:
    """SHA-256 over each JSON Lines row re-encoded canonically, as the manifest's `rows_sha256` was made."""

    def __init__(self) -> None:
        self.digest, self.count, self._rest = hashlib.sha256(), 0, b""

    def feed(self, chunk: bytes) -> None:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.strip():
                self.digest.update(canonical_json(json.loads(line)) + b"\n")
                self.count += 1

    def finish(self) -> tuple[str, int]:
        self.feed(b"\n")
        return self.digest.hexdigest(), self.count


def _verify(format: str, manifest: dict, out: AtomicFile, rows: _RowHasher | None) -> str:
    expected_rows = manifest.get("row_count")
    if format == "parquet":
        expected = manifest["files"][DATA_FILE]
        if out.sha256.hexdigest() != expected["sha256"] or out.size != expected["bytes"]:
            raise IntegrityError(f"The downloaded file ({out.size} bytes, SHA-256 {out.sha256.hexdigest()[:16]}…) is "
                                 f"not the version's ({expected['bytes']} bytes, {expected['sha256'][:16]}…); nothing "
                                 "was kept. Try again; if it persists, tell the Datanet's owner.")
        return "SHA-256 and size match the manifest; the manifest matches the version hash"
    if format == "jsonl":
        digest, count = rows.finish()
        if digest != manifest.get("rows_sha256") or count != expected_rows:
            raise IntegrityError(f"The downloaded rows ({count}, SHA-256 {digest[:16]}…) are not the version's "
                                 f"({expected_rows}, {str(manifest.get('rows_sha256'))[:16]}…); nothing was kept. "
                                 "Try again; if it persists, tell the Datanet's owner.")
        return "rows_sha256 and row count match the manifest; the manifest matches the version hash"
    out.flush()
    with out.partial.open(encoding="utf-8", newline="") as written:
        count = sum(1 for _ in csv.reader(written)) - 1  # less the header
    if count != expected_rows:
        raise IntegrityError(f"The CSV holds {count} rows, not the version's {expected_rows}; nothing was kept.")
    return "row count matches the manifest (CSV cells are neutralised for spreadsheets: no content hash applies)"
