"""The Datanets' public vocabulary: the enumerations other apps may name (a Datanet's task type, a row's review
status, an upload's state, a member's role, a training-access request's state...). Other apps import them from
here, never from `datanets.models`; reads and writes go through `datanets.selectors` and `datanets.services`
(tests/foundation/test_app_boundaries.py)."""

from .models import (
    AccessState,
    ContributionPolicy,
    ContributionSource,
    ContributionState,
    Licence,
    RecordStatus,
    Role,
    TaskType,
    TrainingAccess,
    Visibility,
)

__all__ = [
    "AccessState", "ContributionPolicy", "ContributionSource", "ContributionState", "Licence", "RecordStatus",
    "Role", "TaskType", "TrainingAccess", "Visibility",
]
