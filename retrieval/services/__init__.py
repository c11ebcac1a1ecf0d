"""Writes for retrieval: one search index per published version of a Documents Datanet, and retrieval apps.

Callers import this package (`from retrieval import services`); the code lives in the module named for what it
does:

* `builds`: `index_build_queue` (on publish), the build job `index_build` (gpu queue), `index_build_requeue`
  (staff, after a failure) and `index_fail_corrupt` (stored files that no longer verify).
* `apps`: `app_deploy`, `app_update` and `app_retire`: a retrieval app over published versions, answering on the
  API.
* `answers`: `app_answer`, a retrieval app's answer to a chat completion (retrieved, quoted or generated, cited,
  its fee split among the cited passages' contributors), and the credit rule `passage_shares`.
* `streaming`: `StreamedAppAnswer`, the same answer streamed (a causal model's tokens as they are generated; the fee
  settled once it is complete), and `answer_pieces` (an answer complete before streaming, cut into words).
"""

from .answers import CREDIT_RULE, RetrievalAnswer, passage_shares
from .answers import answer as app_answer
from .apps import app_deploy, app_retire, app_update
from .builds import (
    BUILD_LABEL,
    STORAGE_ROOT,
    index_build,
    index_build_queue,
    index_build_requeue,
    index_fail_corrupt,
)
from .streaming import StreamedAppAnswer, answer_pieces

__all__ = [
    "BUILD_LABEL",
    "CREDIT_RULE",
    "STORAGE_ROOT",
    "RetrievalAnswer",
    "StreamedAppAnswer",
    "answer_pieces",
    "app_answer",
    "app_deploy",
    "app_retire",
    "app_update",
    "index_build",
    "index_build_queue",
    "index_build_requeue",
    "index_fail_corrupt",
    "passage_shares",
]
