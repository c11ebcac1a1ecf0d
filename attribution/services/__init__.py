"""Writes for Proof of Attribution: index builds (gpu queue), receipts and their verification.

The computation is the engine's (`attribution.engine`); these functions feed it the model version's
own training rows, encoded exactly as training encoded them, and turn its results into rows. Callers
import this package (`from attribution import services; services.receipt_create(...)`); the code lives
in the module named for what it does:

* `encoding`: rows and queries encoded exactly as training encoded them.
* `builds`: `index_build_queue`, the build job `index_build`, `index_verify` and `index_config` (the
  platform's index configuration).
* `loading`: the per-process LRU cache of a model and its verified index (`cache_clear`), and
  `model_output`, the model's own answer.
* `receipts`: `receipt_create`, `receipt_create_paid` (a direct attribution request, charged like an answer),
  `receipt_verify` and `query_digest`.
* `verbatim`: the span index of causal versions (`span_index_store`, `span_index_verify`) and the
  verbatim spans a receipt lists (`with_verbatim_spans`).
* `errors`: `IndexNotReady`, `IndexCorrupt`, `ReceiptMismatch`, `BuildError`.
"""

from .builds import (
    BUILD_LABEL,
    PROGRESS_EVERY_S,
    STORAGE_ROOT,
    index_build,
    index_build_queue,
    index_config,
    index_verify,
)
from .encoding import training_batch, training_row_ids
from .errors import BuildError, IndexCorrupt, IndexNotReady, ReceiptMismatch
from .loading import cache_clear, model_output
from .receipts import (
    ProbeUnpaid,
    ReceiptCheck,
    query_digest,
    receipt_create,
    receipt_create_paid,
    receipt_verify,
)
from .verbatim import span_index_store, span_index_verify, with_verbatim_spans

__all__ = [
    "BUILD_LABEL",
    "PROGRESS_EVERY_S",
    "STORAGE_ROOT",
    "BuildError",
    "IndexCorrupt",
    "IndexNotReady",
    "ProbeUnpaid",
    "ReceiptCheck",
    "ReceiptMismatch",
    "cache_clear",
    "index_build",
    "index_build_queue",
    "index_config",
    "index_verify",
    "model_output",
    "query_digest",
    "training_batch",
    "training_row_ids",
    "receipt_create",
    "receipt_create_paid",
    "receipt_verify",
    "span_index_store",
    "span_index_verify",
    "with_verbatim_spans",
]
