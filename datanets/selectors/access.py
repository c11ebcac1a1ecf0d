"""Which Datanets a person may see and what they may do in each, and finding them.

The one place that decides who may see or do what: a user's role in a Datanet and the permissions it gives
(`datanet_permissions`), the Datanets a user may see (`datanets_visible_to`; every query that lists or fetches
a Datanet, a row or a version goes through it), a visible Datanet by slug, the Datanet search with accepted-row
counts, and who asked for training access.
"""

from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from ..models import (
    AccessState,
    ContributionPolicy,
    Datanet,
    Membership,
    Record,
    RecordStatus,
    Role,
    TrainingAccess,
    TrainingAccessRequest,
    Visibility,
)


def datanet_role(*, datanet: Datanet, user) -> str | None:
    """The user's role in this Datanet: owner, curator, contributor (a member), or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    if datanet.owner_id == user.pk:
        return Role.OWNER
    return Membership.objects.filter(datanet=datanet, user=user).values_list("role", flat=True).first()


@dataclass(frozen=True)
class DatanetPermissions:
    role: str | None
    can_view: bool
    can_contribute: bool
    can_curate: bool
    can_manage: bool
    can_train: bool
    can_download: bool


def datanet_permissions(*, datanet: Datanet, user) -> DatanetPermissions:
    role = datanet_role(datanet=datanet, user=user)
    authenticated = getattr(user, "is_authenticated", False)
    is_member = role is not None
    can_view = datanet.visibility == Visibility.PUBLIC or is_member
    can_curate = role in (Role.OWNER, Role.CURATOR)
    can_contribute = authenticated and can_view and (datanet.contribution_policy == ContributionPolicy.ANYONE or is_member)
    approved = (
        authenticated
        and TrainingAccessRequest.objects.filter(datanet=datanet, requester=user, state=AccessState.APPROVED).exists()
    )
    can_train = authenticated and can_view and (
        can_curate or datanet.training_access == TrainingAccess.OPEN or approved
    )
    return DatanetPermissions(
        role=role,
        can_view=can_view,
        can_contribute=can_contribute,
        can_curate=can_curate,
        can_manage=role == Role.OWNER,
        can_train=can_train,
        # Downloading a version is what training needs; the same rule keeps the two consistent.
        can_download=can_train,
    )


def datanets_visible_to(*, user):
    """Each Datanet the user may see, once. Membership is tested by a subquery, not a join: a join on
    the members table repeats a Datanet once per member, and any count annotated on top of it (accepted
    rows, say) is multiplied by the number of members."""
    queryset = Datanet.objects.select_related("owner")
    if not getattr(user, "is_authenticated", False):
        return queryset.filter(visibility=Visibility.PUBLIC)
    return queryset.filter(
        Q(visibility=Visibility.PUBLIC) | Q(owner=user)
        | Q(pk__in=Membership.objects.filter(user=user).values("datanet_id"))
    )


def datanet_get_visible(*, slug: str, user) -> Datanet:
    """The Datanet if the user may see it; a 404 otherwise, so private ones do not reveal they exist."""
    datanet = datanets_visible_to(user=user).filter(slug=slug).first()
    if datanet is None:
        raise Http404("No such Datanet.")
    return datanet


def _accepted_rows_subquery():
    return Subquery(
        Record.objects.filter(datanet=OuterRef("pk"), status=RecordStatus.ACCEPTED).order_by()
        .values("datanet").annotate(n=Count("pk")).values("n")[:1]
    )


def with_accepted_rows(queryset):
    """The Datanets annotated with `accepted` (their accepted rows). A correlated subquery, so the count
    stays right whatever else the queryset joins (members, tags, versions)."""
    return queryset.annotate(accepted=Coalesce(_accepted_rows_subquery(), 0))


def datanet_accepted_rows(*, datanet: Datanet) -> int:
    """Accepted rows of one Datanet: the figure its page, `/stats/` and the list all show."""
    return Record.objects.filter(datanet=datanet, status=RecordStatus.ACCEPTED).count()


def datanet_search(*, user, query: str = "", task_type: str = "", tag: str = ""):
    queryset = datanets_visible_to(user=user)
    if query:
        queryset = queryset.filter(Q(name__icontains=query) | Q(summary__icontains=query) | Q(slug__icontains=query))
    if task_type:
        queryset = queryset.filter(task_type=task_type)
    datanets = list(with_accepted_rows(queryset))
    if tag:
        # Tags are a JSON list; filtered in Python so the query works the same on SQLite and PostgreSQL.
        datanets = [d for d in datanets if tag in d.tags]
    return datanets


def datanet_ids_visible_among(*, user, ids) -> set[int]:
    """Which of these Datanets the user may still see (a member removed from a private one may not)."""
    return set(datanets_visible_to(user=user).filter(pk__in=list(ids)).values_list("pk", flat=True))


def training_access_requests_for(*, datanet: Datanet):
    return TrainingAccessRequest.objects.filter(datanet=datanet).select_related("requester").order_by("state", "-created_at")
