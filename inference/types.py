"""Serving's public vocabulary: the enumerations other apps may name (an inference record's status). Other apps
import them from here, never from `inference.models`; reads and writes go through `inference.services`
(tests/foundation/test_app_boundaries.py)."""

from .models import InferenceStatus

__all__ = ["InferenceStatus"]
