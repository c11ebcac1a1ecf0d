"""Writes for ModelFactory: base models, fine-tune jobs (queued on the gpu queue), model versions.

The training itself is the engine's (`models_registry.training`); these functions turn database rows into its
inputs and its results back into rows, with an audit event in the same transaction.

Callers import this package (`from models_registry import services; services.fine_tune_create(...)`); each
write lives in the module named for what it does:

* `base_models`: `base_model_ensure_default` (the bundled MiniLM), `base_model_source` (where the engine finds one).
* `fine_tunes`: what a job's owner asks for: `fine_tune_check_datanets` (the form asks it too),
  `fine_tune_create`, `fine_tune_cancel`, `fine_tune_resume` (`HYPERPARAMETER_DEFAULTS`, `RESUMABLE_STATES`).
* `fine_tune_runs`: a job's run on the gpu worker, `fine_tune_run`, ending failed or cancelled, or succeeded
  with `model_version_register` (the adapter stored, the `ModelVersion` recorded).
* `model_versions`: a registered version's owner settings (`model_version_update`), deploying it
  (`model_version_set_deployed`), its attribution status and its adapter's files.

Module constants are read where they are defined: a test that changes one patches that module
(`fine_tune_runs.CANCEL_POLL_S`), not this package.
"""

# Torch-free modules of the training engine only (see `fine_tune_runs`); re-exported because tests replace
# `services.training.run_training`, which `fine_tune_runs` calls through this same module object.
from .. import training
from .base_models import base_model_ensure_default, base_model_source
from .fine_tune_runs import (
    CANCEL_POLL_S,
    FINE_TUNE_LABEL,
    FINISH_AUDIT_ACTIONS,
    LOG_TAIL_LINES,
    fine_tune_run,
    model_version_register,
)
from .fine_tunes import (
    HYPERPARAMETER_DEFAULTS,
    RESUMABLE_STATES,
    fine_tune_cancel,
    fine_tune_check_datanets,
    fine_tune_create,
    fine_tune_resume,
)
from .model_versions import (
    OWNER_SETTINGS,
    model_version_adapter_zip,
    model_version_local_dir,
    model_version_set_attribution_status,
    model_version_set_deployed,
    model_version_update,
)

__all__ = [
    "CANCEL_POLL_S",
    "FINE_TUNE_LABEL",
    "FINISH_AUDIT_ACTIONS",
    "HYPERPARAMETER_DEFAULTS",
    "LOG_TAIL_LINES",
    "OWNER_SETTINGS",
    "RESUMABLE_STATES",
    "base_model_ensure_default",
    "base_model_source",
    "fine_tune_cancel",
    "fine_tune_check_datanets",
    "fine_tune_create",
    "fine_tune_resume",
    "fine_tune_run",
    "model_version_adapter_zip",
    "model_version_local_dir",
    "model_version_register",
    "model_version_set_attribution_status",
    "model_version_set_deployed",
    "model_version_update",
    "training",
]
