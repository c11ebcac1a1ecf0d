"""Fine-tunes: launch one from a spec (a base model, Datanet versions, hyperparameters), wait for it with a live
progress bar (step, epoch, loss), cancel it, resume it."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._http import API
from ._waiting import Backoff, Progress, wait_until_finished
from .errors import BadRequestError, JobFailedError
from .types import BaseModel, DatanetVersion, FineTune

if TYPE_CHECKING:
    from .client import Lineage

DEFAULT_BASE_MODEL = "all-minilm-l6-v2"
# The settings the API takes (the page's form). Anything else is refused here, before any request: the server
# refuses unknown fields too (400), but a misspelt "epoch" in a spec file is clearest caught where it was written.
HYPERPARAMETERS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate", "epochs",
                   "batch_size", "max_seq_length", "eval_fraction", "seed")

VersionRef = str | tuple[str, int] | dict | DatanetVersion


def version_ref(ref: VersionRef) -> dict:
    """{"datanet", "number"} for "slug:2", ("slug", 2), {"datanet": "slug", "number": 2} or a DatanetVersion."""
    if isinstance(ref, DatanetVersion):
        return {"datanet": ref.datanet, "number": ref.number}
    if isinstance(ref, dict) and {"datanet", "number"} <= set(ref):
        slug, number = ref["datanet"], ref["number"]
    elif isinstance(ref, tuple) and len(ref) == 2:
        slug, number = ref
    elif isinstance(ref, str) and ref.count(":") == 1:
        slug, number = ref.split(":")
    else:
        raise BadRequestError(f"“{ref}” does not name a Datanet version: write it as slug:number, e.g. "
                              "support-tickets:2.", code="invalid", fields={"datanet_versions": [str(ref)]})
    try:
        number = int(number)
    except (TypeError, ValueError):
        number = 0
    if not str(slug).strip() or number < 1:
        raise BadRequestError(f"“{ref}” does not name a Datanet version: the version number is a whole number "
                              "from 1, e.g. support-tickets:2.", code="invalid", fields={"datanet_versions": [str(ref)]})
    return {"datanet": str(slug).strip(), "number": number}


@dataclass
class FineTuneSpec:
    """What to train: a base model, the Datanet versions to train on, and hyperparameters (any left out take
    the server's defaults; learning rate, epochs and batch size left out are scaled to the data)."""

    datanet_versions: list[VersionRef]
    base_model: str = DEFAULT_BASE_MODEL
    name: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> FineTuneSpec:
        """A spec from a TOML or JSON file: `base_model`, `datanet_versions` (["slug:2", ...]), `name`, and the
        hyperparameters either at the top level or in a `hyperparameters` table."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BadRequestError(f"Cannot read the spec file {path}: {exc.strerror}.", code="no_file") from exc
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise BadRequestError(f"The spec file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}"
                                  f": {exc}.", code="invalid") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> FineTuneSpec:
        data = dict(data)
        hyperparameters = dict(data.pop("hyperparameters", {}) or {})
        versions = data.pop("datanet_versions", None)
        if not versions:
            raise BadRequestError("The spec names no Datanet versions: add datanet_versions = [\"slug:number\"].",
                                  code="invalid", fields={"datanet_versions": ["Name at least one version."]})
        spec = cls(datanet_versions=list(versions), base_model=data.pop("base_model", DEFAULT_BASE_MODEL),
                   name=data.pop("name", ""))
        spec.hyperparameters = {**data, **hyperparameters}
        return spec

    def to_request(self) -> dict:
        unknown = sorted(set(self.hyperparameters) - set(HYPERPARAMETERS))
        if unknown:
            raise BadRequestError(f"Unknown setting(s): {', '.join(unknown)}. The settings are: "
                                  f"{', '.join(HYPERPARAMETERS)}.", code="invalid",
                                  fields={name: ["Not a fine-tune setting."] for name in unknown})
        versions = [version_ref(v) for v in self.datanet_versions]
        if not versions:
            raise BadRequestError("Name at least one Datanet version to train on.", code="invalid",
                                  fields={"datanet_versions": ["Name at least one version."]})
        name = self.name or "-".join(f"{v['datanet']}-v{v['number']}" for v in versions)[:120]
        return {"name": name, "base_model": self.base_model, "datanet_versions": versions, **self.hyperparameters}


def _describe(job: FineTune) -> str:
    steps = f", step {job.step}/{job.total_steps}" if job.total_steps else ""
    return f"fine-tune {job.id} is {job.state}{steps}"


class FineTunesAPI:
    def __init__(self, client: Lineage) -> None:
        self._client = client
        self._http = client._http

    def base_models(self) -> list[BaseModel]:
        return [BaseModel.from_api(b) for b in self._http.pages(f"{API}/base-models/")]

    def launch(self, spec: FineTuneSpec | dict | None = None, *, datanet_versions: Iterable[VersionRef] = (),
               base_model: str = DEFAULT_BASE_MODEL, name: str = "", wait: bool = False, progress: bool = True,
               timeout: float | None = None, **hyperparameters: Any) -> FineTune:
        """Queue a fine-tune (scope `train`): from a `FineTuneSpec` (or its dict), or from the keyword arguments.
        The server checks it as the page's form does. `wait=True` waits for the end (see `wait`)."""
        if spec is not None and (datanet_versions or name or hyperparameters or base_model != DEFAULT_BASE_MODEL):
            raise TypeError("Give either a spec or the keyword arguments that make one, not both.")
        if spec is None:
            spec = FineTuneSpec(list(datanet_versions), base_model, name, hyperparameters)
        elif isinstance(spec, dict):
            spec = FineTuneSpec.from_dict(spec)
        job = FineTune.from_api(self._http.request("POST", f"{API}/fine-tunes/", json=spec.to_request()))
        return self.wait(job.id, progress=progress, timeout=timeout) if wait else job

    def get(self, job_id: int) -> FineTune:
        return FineTune.from_api(self._http.request("GET", f"{API}/fine-tunes/{job_id}/", what=f"fine-tune {job_id}"))

    def list(self, *, state: str = "") -> list[FineTune]:
        params = {"state": state} if state else None
        return [FineTune.from_api(j) for j in self._http.pages(f"{API}/fine-tunes/", params=params)]

    def cancel(self, job_id: int) -> FineTune:
        """Cancel a queued job at once, or ask a running one to stop at its next step (it keeps its checkpoint;
        `resume` continues from there). A finished job raises `ConflictError` (`not_cancellable`)."""
        return FineTune.from_api(self._http.request("POST", f"{API}/fine-tunes/{job_id}/cancel/",
                                                    what=f"fine-tune {job_id}"))

    def resume(self, job_id: int, *, wait: bool = False, progress: bool = True, timeout: float | None = None
               ) -> FineTune:
        """Queue a cancelled or failed job again, from its checkpoint. Any other state raises `ConflictError`
        (`not_resumable`)."""
        job = FineTune.from_api(self._http.request("POST", f"{API}/fine-tunes/{job_id}/resume/",
                                                   what=f"fine-tune {job_id}"))
        return self.wait(job.id, progress=progress, timeout=timeout) if wait else job

    def wait(self, job_id: int, *, progress: bool = True, timeout: float | None = None,
             backoff: Backoff | None = None) -> FineTune:
        """Poll until the job succeeds, fails or is cancelled, with a progress bar over its steps showing the
        epoch and the latest training loss. Returns the succeeded job (its `model_version` is the new model's
        slug); a failed or cancelled one raises `JobFailedError` (its `result` is the job). Ctrl-C stops
        waiting only (`WaitInterrupted`): the job goes on."""
        with Progress(enabled=progress, desc=f"fine-tune {job_id}", total=None, unit="step") as bar:
            def show(job: FineTune) -> None:
                epoch = f"epoch {job.epoch}/{job.total_epochs}" if job.total_epochs else f"epoch {job.epoch}"
                loss = f", loss {job.last_loss:.4f}" if job.last_loss is not None else ""
                bar.set(n=job.step, total=job.total_steps or None, postfix=f"{job.state}, {epoch}{loss}")

            job = wait_until_finished(
                lambda: self.get(job_id), finished=lambda j: j.finished,
                fingerprint=lambda j: (j.state, j.step, j.epoch), show=show, describe=_describe,
                backoff=backoff or self._client.backoff, timeout=timeout, sleep=self._client.sleep,
            )
        if job.state == "failed":
            raise JobFailedError(f"Fine-tune {job.id} failed: {job.error or 'no reason given'}", result=job,
                                 code="fine_tune_failed")
        if job.state == "cancelled":
            raise JobFailedError(f"Fine-tune {job.id} was cancelled at step {job.step}/{job.total_steps}; resume it "
                                 "from its checkpoint with `resume`.", result=job, code="fine_tune_cancelled")
        return job
