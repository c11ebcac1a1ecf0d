"""Writes for retrieval: one search index per published version of a Documents Datanet.

Callers import this package (`from retrieval import services`); the code lives in `builds`:
`index_build_queue` (on publish), the build job `index_build` (gpu queue), `index_build_requeue` (staff,
after a failure) and `index_fail_corrupt` (stored files that no longer verify).
"""

from .builds import (
    BUILD_LABEL,
    STORAGE_ROOT,
    index_build,
    index_build_queue,
    index_build_requeue,
    index_fail_corrupt,
)

__all__ = [
    "BUILD_LABEL",
    "STORAGE_ROOT",
    "index_build",
    "index_build_queue",
    "index_build_requeue",
    "index_fail_corrupt",
]
