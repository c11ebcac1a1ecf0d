"""The errors the retrieval app raises, in one place so services, selectors and views name the same class."""

from lineage import jobs


class IndexNotReady(Exception):
    """A version has no index that can be searched yet (queued, building or failed); `code` says which."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class IndexCorrupt(Exception):
    """The stored index files no longer match the hash recorded when the index was built."""


class NotSearchable(Exception):
    """The version belongs to a Datanet that is not a Documents Datanet: it has no search index."""


class BuildError(jobs.ExpectedJobError):
    """A reason an index cannot be built that a person can act on (shown as it is)."""


class QueryEmbeddingUnavailable(Exception):
    """The model server that embeds search queries could not (down, too slow, a wrong token, a bad answer):
    `status` (502, 503 or 504) and `code` for the API, `message` for people. Lexical search still works."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status
