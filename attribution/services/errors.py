"""The errors attribution's services raise, in one place so every module (and caller) names the same class."""

from lineage import jobs


class IndexNotReady(Exception):
    """The model version's index is not built (or not usable): no receipt can be computed."""


class IndexCorrupt(IndexNotReady):
    """The stored index files no longer match the hash recorded when it was built."""


class ReceiptMismatch(Exception):
    """A receipt is already stored under this inference id for another model version, requester or query:
    it is not this inference's receipt, and it is neither returned nor overwritten."""


class BuildError(jobs.ExpectedJobError):
    """A reason an index cannot be built that a person can act on (shown as it is)."""
