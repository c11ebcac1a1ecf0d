"""ModelFactory's public vocabulary: the enumerations other apps may name (a fine-tune's state, where a base
model comes from, a model version's attribution status). Other apps import them from here, never from
`models_registry.models`; reads and writes go through `models_registry.selectors` and `models_registry.services`
(tests/foundation/test_app_boundaries.py)."""

from .models import AttributionStatus, JobState, SourceKind

__all__ = ["AttributionStatus", "JobState", "SourceKind"]
