"""Shared corpus and encoders for the retrieval engine tests (no Django, no database)."""

import pytest
from retrieval_corpus import StaticMiniLMEncoder, passages

from retrieval.engine import PassageEncoder


@pytest.fixture(scope="session")
def corpus():
    """4,000 real English passages (standard-library docstrings), each with a stable id."""
    return passages(4000)


@pytest.fixture(scope="session")
def static_encoder():
    return StaticMiniLMEncoder()


@pytest.fixture(scope="session")
def minilm():
    return PassageEncoder()
