"""Reads for the other apps, which never import `datanets.models` (tests/foundation/test_app_boundaries.py).

Datanets, versions, rows, contributions and training-access requests by id, the Datanets a person owns,
the versions a user may or may not see, and the links between rows and versions that retrieval and
notifications follow.
"""

from django.db.models import Q

from ..models import Contribution, Datanet, DatanetVersion, Record, Role, TrainingAccessRequest, VersionRecord
from .access import datanets_visible_to


def datanets_by_id(*, ids) -> dict[int, Datanet]:
    """{id: Datanet} for these ids; unknown ids are left out."""
    return Datanet.objects.in_bulk(list(ids))


def datanets_owned_by(*, user):
    """The Datanets this person owns, or co-owns through an owner membership, by name."""
    return (Datanet.objects.filter(Q(owner=user) | Q(memberships__user=user, memberships__role=Role.OWNER))
            .distinct().order_by("name"))


def version_by_id(*, pk) -> DatanetVersion | None:
    return DatanetVersion.objects.select_related("datanet").filter(pk=pk).first()


def versions_by_id(*, ids) -> dict[int, DatanetVersion]:
    """{id: version, with its Datanet} for these ids; unknown ids are left out."""
    return DatanetVersion.objects.select_related("datanet").in_bulk(list(ids))


def versions_visible_to(*, user, task_type: str = ""):
    """Every version (with its Datanet) of the Datanets the user may see, of one task type when given."""
    visible = datanets_visible_to(user=user)
    if task_type:
        visible = visible.filter(task_type=task_type)
    return DatanetVersion.objects.filter(datanet__in=visible).select_related("datanet")


def versions_hidden_from(*, user):
    """Every version of the Datanets the user may not see (by `datanets_visible_to`)."""
    return DatanetVersion.objects.exclude(datanet__in=datanets_visible_to(user=user).values("pk"))


def version_record_pairs(*, versions, record_ids) -> set[tuple[int, int]]:
    """(version id, record id) for each of these records that each of these versions holds."""
    return set(VersionRecord.objects.filter(version__in=versions, record_id__in=record_ids)
               .values_list("version_id", "record_id"))


def records_by_id(*, ids) -> dict[int, Record]:
    """{id: record, with its contributor} for these ids; unknown ids are left out."""
    return Record.objects.select_related("contributor").in_bulk(list(ids))


def record_copy_links(*, ids) -> list[tuple[int, int | None, str, int]]:
    """(record id, id of the earlier row it was found to nearly duplicate or None, status, contributor id) of
    these records: what following near-duplicate links back to a row's first accepted copy needs."""
    return list(Record.objects.filter(pk__in=ids).values_list("pk", "near_duplicate_of_id", "status",
                                                              "contributor_id"))


def contribution_by_id(*, pk) -> Contribution | None:
    return Contribution.objects.select_related("datanet").filter(pk=pk).first()


def training_access_request_by_id(*, pk) -> TrainingAccessRequest | None:
    return TrainingAccessRequest.objects.select_related("datanet", "requester").filter(pk=pk).first()
