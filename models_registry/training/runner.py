"""``run_training``: a resumable, deterministic LoRA fine-tuning loop in plain PyTorch.

Work directory layout (one directory per training job)::

    work_dir/run.json          the inputs' fingerprint and spec (refuses a different job)
    work_dir/checkpoint.pt     latest checkpoint (adapter + optimizer + scheduler + RNG + step)
    work_dir/model/            the finished model version (peft adapter, tokenizer, manifest)

Why a hand-written loop rather than transformers.Trainer: the data order must be the recorded,
seed-derived plan (attribution replays it), resume must be exact at any step, progress and
cancellation hook into every step, and without Trainer's generic machinery the loop is at least as
fast (bench/train.py measures both side by side).

Exactness of resume: a step's result depends only on the trainable weights, AdamW moments, the LR
schedule position, the torch RNG (dropout) and the batch; the batch is a pure function of the step
(see ``DataPlan``) and the rest is checkpointed, so on CPU a resumed run is bit-identical.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from .encoding import EncodedExample, encode_rows, pad_batch
from .errors import InvalidTrainingInput, ModelSourceError, TrainingCancelled, TrainingFailed
from .evaluation import evaluate_causal, evaluate_classification
from .manifest import MANIFEST_NAME, engine_code_version, library_versions, read_manifest, write_manifest
from .sources import (
    config_sha256,
    default_lora_target_modules,
    load_causal_model,
    load_classification_model,
    load_tokenizer,
    model_type_of,
    resolve_model_path,
)
from .spec import DataPlan, TrainingRow, TrainingSpec, plan_data, run_fingerprint, validate_rows

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_DIR = "model"


@dataclass(frozen=True)
class ProgressEvent:
    """A progress report for the live job page; ``loss`` is the mean since the previous report.

    Numbering is 1-based throughout: ``step`` is how many optimizer steps are done ("step 6 of 9"),
    and ``epoch`` is the epoch of the step just finished, of ``total_epochs`` (1 before the first
    step). ``message`` is set on events worth a log line, each once per run: "starting"/"resuming",
    "epoch N/M done ..." at the end of every epoch, "cancelled", "evaluating" and "done"; the
    reports in between carry an empty message.
    """

    step: int
    total_steps: int
    epoch: int
    loss: float | None
    lr: float
    eta_s: float | None
    examples_per_s: float | None
    message: str
    total_epochs: int = 0


@dataclass(frozen=True)
class TrainingResult:
    """A finished model version. ``reused`` is true when work_dir already held this finished run."""

    model_dir: Path
    model_version_id: str
    metrics: dict[str, Any]
    base_metrics: dict[str, Any]
    epoch_row_ids: list[list[str]]
    manifest: dict[str, Any]
    resumed_from_step: int | None
    reused: bool

    @classmethod
    def from_model_dir(cls, model_dir: Path, reused: bool) -> TrainingResult:
        manifest = read_manifest(model_dir)
        content = manifest["content"]
        return cls(
            model_dir=model_dir,
            model_version_id=manifest["model_version_id"],
            metrics=content["metrics"]["finetuned"],
            base_metrics=content["metrics"]["base"],
            epoch_row_ids=content["data"]["epoch_row_ids"],
            manifest=manifest,
            resumed_from_step=manifest["run_info"]["resumed_from_step"],
            reused=reused,
        )


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


def run_training(
    spec: TrainingSpec,
    rows: Sequence[TrainingRow],
    work_dir: Path | str,
    on_progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    *,
    dataset_versions: Mapping[str, str] | None = None,
    checkpoint_every_steps: int = 50,
    progress_every_steps: int = 5,
) -> TrainingResult:
    """Train (or resume, or return the already finished) LoRA model version for ``spec`` on ``rows``.

    ``dataset_versions`` (e.g. ``{"datanet:42": "<version hash>"}``) is recorded in the manifest and
    is part of the run's identity. Raises ``InvalidTrainingInput`` before any compute for bad input,
    ``TrainingCancelled`` (checkpoint written) when ``should_cancel()`` turns true, and
    ``TrainingFailed`` with a readable reason for anything else, including out-of-memory and
    exceptions raised by ``on_progress``. Calling again with the same inputs and work_dir resumes
    from the last checkpoint; checkpoint and progress intervals do not change the result.
    """
    spec.validate()
    validate_rows(spec, rows)
    if checkpoint_every_steps < 1 or progress_every_steps < 1:
        raise InvalidTrainingInput("checkpoint_every_steps and progress_every_steps must be >= 1")
    dataset_versions = dict(dataset_versions or {})
    work_dir = Path(work_dir)
    fingerprint = run_fingerprint(spec, rows, dataset_versions)
    plan = plan_data(spec, rows)
    device = _pick_device(spec.device)
    if _claim_work_dir(work_dir, fingerprint, spec):
        return TrainingResult.from_model_dir(work_dir / MODEL_DIR, reused=True)
    try:
        base_path = resolve_model_path(spec.base)
    except ModelSourceError as exc:
        raise TrainingFailed(f"base model unavailable: {exc}") from exc
    try:
        return _Run(spec, plan, work_dir, fingerprint, dataset_versions, device, base_path).execute(
            on_progress, should_cancel, checkpoint_every_steps, progress_every_steps
        )
    except (TrainingFailed, TrainingCancelled):
        raise
    except torch.OutOfMemoryError as exc:
        raise TrainingFailed(
            f"out of memory on {device}: lower batch_size ({spec.batch_size}) or max_seq_length "
            f"({spec.max_seq_length}); {exc}"
        ) from exc
    except MemoryError as exc:
        raise TrainingFailed(f"out of host memory: lower batch_size or max_seq_length; {exc!r}") from exc
    except Exception as exc:
        raise TrainingFailed(f"training crashed: {type(exc).__name__}: {exc}") from exc


def _claim_work_dir(work_dir: Path, fingerprint: str, spec: TrainingSpec) -> bool:
    """Bind work_dir to this run's fingerprint; true when it already holds the finished model."""
    run_file = work_dir / RUN_FILE
    if run_file.exists():
        recorded = json.loads(run_file.read_text())["fingerprint"]
        if recorded != fingerprint:
            raise InvalidTrainingInput(
                f"{work_dir} belongs to a different training run (inputs fingerprint {recorded[:12]}..., "
                f"this one {fingerprint[:12]}...): use a fresh work_dir"
            )
        return (work_dir / MODEL_DIR / MANIFEST_NAME).is_file()
    work_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(
        run_file, json.dumps({"fingerprint": fingerprint, "spec": spec.to_dict()}, indent=2).encode()
    )
    return False


def _pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise InvalidTrainingInput("device='cuda' was requested but CUDA is not available on this machine")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _deterministic_algorithms() -> Iterator[None]:
    """Force deterministic kernels for the run, restoring the process-wide setting afterwards."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


class _Run:
    """State of one execution of a training job (fresh or resumed)."""

    def __init__(
        self,
        spec: TrainingSpec,
        plan: DataPlan,
        work_dir: Path,
        fingerprint: str,
        dataset_versions: dict[str, str],
        device: torch.device,
        base_path: Path,
    ) -> None:
        self.spec, self.plan, self.work_dir, self.base_path = spec, plan, work_dir, base_path
        self.fingerprint, self.dataset_versions, self.device = fingerprint, dataset_versions, device
        self.step_losses: list[float] = []
        self.resumed_from_step: int | None = None

    def execute(
        self,
        on_progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
        checkpoint_every: int,
        progress_every: int,
    ) -> TrainingResult:
        spec, plan = self.spec, self.plan
        with _deterministic_algorithms():
            self._load()
            train_examples = self._encode(plan.train_rows)
            eval_examples = self._encode(plan.eval_rows)
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate, weight_decay=spec.weight_decay)
            scheduler = get_linear_schedule_with_warmup(
                optimizer, round(spec.warmup_fraction * plan.total_steps), plan.total_steps
            )
            start_step = self._restore(optimizer, scheduler)
            report = _Reporter(on_progress, plan, self.step_losses, start_step)
            report.event(start_step, scheduler.get_last_lr()[0], "resuming" if start_step else "starting")
            self.model.train()
            loop_start = time.perf_counter()
            for step in range(start_step, plan.total_steps):
                if should_cancel is not None and should_cancel():
                    self._save_checkpoint(step, optimizer, scheduler)
                    report.event(step, scheduler.get_last_lr()[0], "cancelled")
                    raise TrainingCancelled(step, plan.total_steps)
                indices = plan.batch_indices(step)
                batch = pad_batch([train_examples[i] for i in indices], self.tokenizer.pad_token_id)
                loss = self.model(**{k: v.to(self.device) for k, v in batch.items()}).loss
                loss.backward()
                if spec.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(trainable, spec.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                self.step_losses.append(loss.item())
                report.examples(len(indices))
                done = step + 1
                if done % checkpoint_every == 0 and done < plan.total_steps:
                    self._save_checkpoint(done, optimizer, scheduler)
                if done % plan.steps_per_epoch == 0 or done == plan.total_steps:
                    # Each epoch is reported once, when its last step is done, with its mean loss.
                    epoch = plan.epoch_of(step)
                    losses = self.step_losses[epoch * plan.steps_per_epoch : done]
                    report.event(
                        done,
                        scheduler.get_last_lr()[0],
                        f"epoch {epoch + 1}/{plan.total_epochs} done: mean training loss "
                        f"{sum(losses) / len(losses):.4f}",
                    )
                elif done % progress_every == 0:
                    report.event(done, scheduler.get_last_lr()[0], "")
            train_seconds = time.perf_counter() - loop_start
            report.event(plan.total_steps, scheduler.get_last_lr()[0], "evaluating")
            metrics, base_metrics = self._evaluate(eval_examples)
            result = self._save_model(metrics, base_metrics, start_step, train_seconds, report)
            report.event(plan.total_steps, scheduler.get_last_lr()[0], "done")
        (self.work_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        return result

    # -- setup -------------------------------------------------------------------------------
    def _load(self) -> None:
        spec = self.spec
        self.model_type = model_type_of(self.base_path)
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(self.base_path)
        if self.tokenizer.pad_token_id is None:
            raise InvalidTrainingInput(f"the tokenizer of {spec.base} has neither a pad nor an eos token")
        try:
            targets = spec.lora_target_modules or default_lora_target_modules(self.model_type)
        except ModelSourceError as exc:
            raise InvalidTrainingInput(str(exc)) from exc
        # Seeded before loading: the fresh classifier head and the LoRA A matrices are random, and
        # the base-model comparison uses that same head.
        torch.manual_seed(spec.seed)
        if spec.task == "text-classification":
            base = load_classification_model(
                self.base_path, spec.label_names, self.tokenizer.pad_token_id, spec.base_dtype
            )
            task_type = TaskType.SEQ_CLS  # peft then also trains and saves the classifier head
        else:
            base = load_causal_model(self.base_path, spec.base_dtype)
            task_type = TaskType.CAUSAL_LM
        self.lora_config = LoraConfig(
            task_type=task_type,
            r=spec.lora_r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=spec.lora_dropout,
            target_modules=list(targets),
        )
        try:
            self.model: PeftModel = get_peft_model(base, self.lora_config)
        except ValueError as exc:
            raise InvalidTrainingInput(
                f"LoRA target modules {list(targets)} do not fit this model: {exc}"
            ) from exc
        self.model.to(self.device)

    def _encode(self, rows: Sequence[TrainingRow]) -> list[EncodedExample]:
        spec = self.spec
        return encode_rows(
            self.tokenizer, spec.task, [r.fields for r in rows], spec.label_names, spec.max_seq_length
        )

    # -- checkpoints -------------------------------------------------------------------------
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def _save_checkpoint(self, step: int, optimizer: Optimizer, scheduler: LRScheduler) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "step": step,
            "epoch": self.plan.epoch_of(step),
            "batch_in_epoch": step % self.plan.steps_per_epoch,
            "trainable": self._trainable_state(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "step_losses": list(self.step_losses),
        }
        path = self.work_dir / CHECKPOINT_FILE
        tmp = path.with_name(path.name + ".partial")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def _restore(self, optimizer: Optimizer, scheduler: LRScheduler) -> int:
        """Load the checkpoint if there is one; returns the step to continue from."""
        path = self.work_dir / CHECKPOINT_FILE
        if not path.exists():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["fingerprint"] != self.fingerprint:
            raise InvalidTrainingInput(f"{path} was written by a different training run")
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                parameters[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step_losses[:] = state["step_losses"]
        self.resumed_from_step = state["step"]
        return state["step"]

    # -- results -----------------------------------------------------------------------------
    def _evaluate(self, eval_examples: list[EncodedExample]) -> tuple[dict[str, Any], dict[str, Any]]:
        pad_id = self.tokenizer.pad_token_id

        def score() -> dict[str, Any]:
            if self.spec.task == "text-classification":
                return evaluate_classification(self.model, eval_examples, pad_id, len(self.spec.label_names))
            return evaluate_causal(self.model, eval_examples, pad_id)

        finetuned = score()
        with self.model.disable_adapter():
            base = score()
        return finetuned, base

    def _save_model(
        self,
        metrics: dict[str, Any],
        base_metrics: dict[str, Any],
        start_step: int,
        train_seconds: float,
        report: _Reporter,
    ) -> TrainingResult:
        spec, plan = self.spec, self.plan
        final_dir = self.work_dir / MODEL_DIR
        partial_dir = self.work_dir / (MODEL_DIR + ".partial")
        shutil.rmtree(partial_dir, ignore_errors=True)
        self.model.save_pretrained(partial_dir)
        self.tokenizer.save_pretrained(partial_dir)
        losses_per_epoch = [
            self.step_losses[e * plan.steps_per_epoch : (e + 1) * plan.steps_per_epoch]
            for e in range(math.ceil(plan.total_steps / plan.steps_per_epoch))
        ]
        content = {
            "task": spec.task,
            "base_model": {
                "source": spec.base.to_dict(),
                "config_sha256": config_sha256(self.base_path),
                "model_type": self.model_type,
            },
            "label_names": list(spec.label_names),
            "hyperparameters": spec.to_dict(),
            "lora": {
                "r": spec.lora_r,
                "alpha": spec.lora_alpha,
                "dropout": spec.lora_dropout,
                "target_modules": sorted(self.lora_config.target_modules),
                "modules_to_save": sorted(self.model.peft_config["default"].modules_to_save or []),
            },
            "dataset_versions": self.dataset_versions,
            "data": {
                "train_row_ids": [r.row_id for r in plan.train_rows],
                "eval_row_ids": [r.row_id for r in plan.eval_rows],
                "epoch_row_ids": plan.used_row_ids_per_epoch(plan.total_steps),
                "row_contributors": {r.row_id: r.contributor_id for r in plan.train_rows + plan.eval_rows},
            },
            "training": {
                "total_steps": plan.total_steps,
                "steps_per_epoch": plan.steps_per_epoch,
                "train_loss_per_epoch": [sum(x) / len(x) for x in losses_per_epoch],
                "final_train_loss": self.step_losses[-1],
            },
            "metrics": {"finetuned": metrics, "base": base_metrics},
            "software": {**library_versions(), "engine_code_sha256": engine_code_version()},
        }
        run_info = {
            "finished_at": datetime.now(UTC).isoformat(),
            "device": str(self.device),
            "resumed_from_step": self.resumed_from_step,
            "steps_this_execution": plan.total_steps - start_step,
            "train_seconds_this_execution": train_seconds,
            "examples_per_s_this_execution": report.n_examples / train_seconds if train_seconds > 0 else None,
            "base_model_path": str(self.base_path),
        }
        write_manifest(partial_dir, content, run_info)
        shutil.rmtree(final_dir, ignore_errors=True)
        os.replace(partial_dir, final_dir)
        return TrainingResult.from_model_dir(final_dir, reused=False)


class _Reporter:
    """Throughput, ETA and windowed loss for ``ProgressEvent``s (measured over this execution only)."""

    def __init__(
        self, callback: ProgressCallback | None, plan: DataPlan, step_losses: list[float], start_step: int
    ) -> None:
        self.callback, self.plan, self.step_losses = callback, plan, step_losses
        self.start_step = start_step
        self.reported_losses = len(step_losses)
        self.started = time.perf_counter()
        self.n_examples = 0

    def examples(self, n: int) -> None:
        self.n_examples += n

    def event(self, step: int, lr: float, message: str) -> None:
        if self.callback is None:
            return
        elapsed = time.perf_counter() - self.started
        steps_done = step - self.start_step
        window = self.step_losses[self.reported_losses :]
        self.reported_losses = len(self.step_losses)
        self.callback(
            ProgressEvent(
                step=step,
                total_steps=self.plan.total_steps,
                epoch=self.plan.epoch_of(max(step - 1, 0)) + 1,
                loss=sum(window) / len(window) if window else None,
                lr=lr,
                eta_s=elapsed / steps_done * (self.plan.total_steps - step) if steps_done > 0 else None,
                examples_per_s=self.n_examples / elapsed if self.n_examples and elapsed > 0 else None,
                message=message,
                total_epochs=self.plan.total_epochs,
            )
        )
