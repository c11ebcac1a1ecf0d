"""Errors of the retrieval engine: a stable ``code`` to branch on, a ``message`` for people."""

from __future__ import annotations


class RetrievalError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class IndexIntegrityError(RetrievalError):
    """An index directory does not match its manifest (or the expected index id); ``problems`` lists
    every check that failed, in words."""

    def __init__(self, directory: str, problems: tuple[str, ...]) -> None:
        super().__init__(
            "index_corrupt", f"The retrieval index at {directory} failed verification: " + "; ".join(problems)
        )
        self.problems = problems
