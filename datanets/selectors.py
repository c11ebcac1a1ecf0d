"""Reads for Datanets, and the one place that decides who may see or do what.

Private Datanets are invisible to non-members everywhere (pages, API, search): every query that lists
or fetches a Datanet, a row or a version goes through `datanets_visible_to`.
"""

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.http import Http404

from .models import (
    DOCUMENT_PASSAGE_FIELDS,
    AccessState,
    Contribution,
    ContributionPolicy,
    Datanet,
    DatanetVersion,
    Membership,
    Record,
    RecordStatus,
    Role,
    RowError,
    TrainingAccess,
    TrainingAccessRequest,
    VersionRecord,
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


def datanet_stats(*, datanet: Datanet) -> dict:
    by_status = dict(
        Record.objects.filter(datanet=datanet).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    labels = list(
        Record.objects.filter(datanet=datanet, status=RecordStatus.ACCEPTED)
        .exclude(label="")
        .values("label")
        .annotate(n=Count("id"))
        .order_by("-n", "label")
    )
    return {
        "pending": by_status.get(RecordStatus.PENDING, 0),
        "accepted": by_status.get(RecordStatus.ACCEPTED, 0),
        "rejected": by_status.get(RecordStatus.REJECTED, 0),
        "total": sum(by_status.values()),
        "duplicates_caught": RowError.objects.filter(contribution__datanet=datanet, code="duplicate").count(),
        "near_duplicates_flagged": Record.objects.filter(datanet=datanet, near_duplicate_of__isnull=False).count(),
        "contributors": Record.objects.filter(datanet=datanet).values("contributor").distinct().count(),
        "label_distribution": labels,
        "label_max": max((item["n"] for item in labels), default=0),
    }


def datanet_recent_contributions(*, datanet: Datanet, limit: int = 10):
    return Contribution.objects.filter(datanet=datanet).select_related("contributor")[:limit]


def contributions_for_user(*, user, datanet: Datanet | None = None):
    queryset = Contribution.objects.filter(contributor=user).select_related("datanet")
    return queryset.filter(datanet=datanet) if datanet else queryset


def contributions_overview_for(*, user):
    """Every upload of the user across Datanets, newest first, for "My contributions". Each is annotated
    with its rows' review outcome: `accepted_rows`, `pending_rows` and `rejected_rows` (rejected by a
    curator). Rows refused before review are the upload's own counts: `rows_rejected` (invalid) and
    `rows_duplicate` (exact duplicates)."""
    return (
        Contribution.objects.filter(contributor=user).select_related("datanet")
        .annotate(accepted_rows=Count("records", filter=Q(records__status=RecordStatus.ACCEPTED)),
                  pending_rows=Count("records", filter=Q(records__status=RecordStatus.PENDING)),
                  rejected_rows=Count("records", filter=Q(records__status=RecordStatus.REJECTED)))
        .order_by("-created_at", "-id")
    )


def rows_rejected_by_curators_for(*, user):
    """The user's rows a curator rejected, latest decision first, with the curator's reason."""
    return (Record.objects.filter(contributor=user, status=RecordStatus.REJECTED)
            .select_related("datanet", "contribution").order_by("-reviewed_at", "-id"))


def rows_rejected_recently_count(*, user, since) -> int:
    """How many of the user's rows a curator rejected at or after `since`."""
    return Record.objects.filter(contributor=user, status=RecordStatus.REJECTED, reviewed_at__gte=since).count()


def datanet_ids_visible_among(*, user, ids) -> set[int]:
    """Which of these Datanets the user may still see (a member removed from a private one may not)."""
    return set(datanets_visible_to(user=user).filter(pk__in=list(ids)).values_list("pk", flat=True))


def contribution_get_for(*, datanet: Datanet, pk: int, user) -> Contribution:
    """Contributors see their own contributions; curators see every contribution of their Datanet."""
    contribution = Contribution.objects.filter(datanet=datanet, pk=pk).select_related("contributor").first()
    if contribution is None:
        raise Http404("No such contribution.")
    if contribution.contributor_id != getattr(user, "pk", None) and not datanet_permissions(
        datanet=datanet, user=user
    ).can_curate:
        raise Http404("No such contribution.")
    return contribution


def review_queue(*, datanet: Datanet, status: str = RecordStatus.PENDING, flag: str = "", contributor: str = "",
                 label: str = "", query: str = ""):
    queryset = Record.objects.filter(datanet=datanet).select_related("contributor", "near_duplicate_of")
    if status:
        queryset = queryset.filter(status=status)
    if flag == "near_duplicate":
        queryset = queryset.filter(near_duplicate_of__isnull=False)
    elif flag == "mislabeled":
        queryset = queryset.filter(quality__has_key="mislabel_score")
    elif flag == "label_conflict":
        queryset = queryset.filter(quality__has_key="label_conflict")
    if contributor:
        queryset = queryset.filter(contributor__username=contributor)
    if label:
        queryset = queryset.filter(label=label)
    if query:
        queryset = _search_fields(queryset, query)
    return queryset.order_by("id")


def review_record_get(*, datanet: Datanet, pk: int) -> Record:
    """One row of this Datanet as the review queue shows it; a 404 when it is not one of its rows."""
    record = (Record.objects.filter(datanet=datanet, pk=pk).select_related("contributor", "near_duplicate_of")
              .first())
    if record is None:
        raise Http404("No such row.")
    return record


def _search_fields(queryset, query: str):
    # JSON containment differs by backend; a cast to text works on both SQLite and PostgreSQL.
    from django.db.models import TextField
    from django.db.models.functions import Cast

    return queryset.annotate(fields_text=Cast("fields", TextField())).filter(fields_text__icontains=query)


def rows_for_viewer(*, datanet: Datanet, version: DatanetVersion | None = None, query: str = "", user=None):
    """Rows for the data viewer: a version's rows, or the live accepted rows (curators also see pending)."""
    if version is not None:
        queryset = Record.objects.filter(versions=version)
    else:
        statuses = [RecordStatus.ACCEPTED]
        if user is not None and datanet_permissions(datanet=datanet, user=user).can_curate:
            statuses.append(RecordStatus.PENDING)
        queryset = Record.objects.filter(datanet=datanet, status__in=statuses)
    if query:
        queryset = _search_fields(queryset, query)
    return queryset.select_related("contributor").order_by("id")


DOCUMENTS_LISTED = 200


def documents_in(*, datanet: Datanet, version: DatanetVersion | None = None) -> dict:
    """The documents of a Documents Datanet, by name, with their passages and contributors: a version's, or
    the accepted passages of the live Datanet. At most `DOCUMENTS_LISTED` documents are listed; `count` is
    how many there are."""
    records = (Record.objects.filter(versions=version) if version is not None
               else Record.objects.filter(datanet=datanet, status=RecordStatus.ACCEPTED))
    by_document = (records.order_by().annotate(document=KeyTextTransform("document", "fields"))
                   .values("document").annotate(passages=Count("pk"), contributors=Count("contributor", distinct=True))
                   .order_by("document"))
    return {"count": by_document.count(), "listed": list(by_document[:DOCUMENTS_LISTED])}


def version_rows_among(*, version: DatanetVersion, row_ids, limit: int):
    """The first `limit` (by id) of these rows of a version, for the version diff: rows a version added
    are read from the later version, rows it removed from the earlier one (they are no longer accepted,
    so only a version still holds them). Each carries its current status."""
    ids = sorted(int(pk) for pk in row_ids)[:limit]
    return Record.objects.filter(versions=version, pk__in=ids).select_related("contributor").order_by("id")


ROW_ERROR_COLUMNS = ("row", "line", "code", "message")


def contribution_error_table(*, contribution: Contribution):
    """(header, rows) of a contribution's row-errors CSV: where each rejected row was (`row`: its data-row
    count, `line`: its line in the file, the number messages use), why, then what it held: one column per
    Datanet column and `raw`, the text of a line that could not be parsed. Rows are streamed."""
    columns = [*contribution.datanet.schema.columns, "raw"]
    header = [*ROW_ERROR_COLUMNS, *(f"row_{c}" if c in ROW_ERROR_COLUMNS else c for c in columns)]

    def rows():
        for error in contribution.row_errors.order_by("row_number", "id").iterator():
            content = error.content or {}
            yield [error.row_number, error.line_number, error.code, error.message,
                   *(content.get(c, "") for c in columns)]

    return header, rows()


def existing_rows_described_to(*, datanet: Datanet, user, row_ids) -> dict[int, str]:
    """How to name rows already in this Datanet in messages to `user` about their upload (a duplicate of,
    similar to, the same text as ...), by row id. The row's id means nothing to a contributor, so:

    - their own row: its text and where it was in their upload ("your row “…” (line 3 of “a.csv”)");
    - a row they may see (accepted rows of a Datanet they can view; every row, for its curators): its text;
    - any other row: "another contributor's row", without its text."""
    ids = sorted({int(pk) for pk in row_ids if pk is not None and str(pk).isdigit()})
    perms = datanet_permissions(datanet=datanet, user=user)
    described = {}
    for start in range(0, len(ids), 500):
        records = (Record.objects.filter(datanet=datanet, pk__in=ids[start:start + 500])
                   .select_related("contribution").only("pk", "fields", "status", "contributor_id", "row_number",
                                                        "line_number", "contribution__file_name"))
        for record in records:
            excerpt = record.excerpt if len(record.excerpt) <= 80 else record.excerpt[:79] + "…"
            if record.contributor_id == getattr(user, "pk", None) and record.line_number is None and set(
                    record.fields) == DOCUMENT_PASSAGE_FIELDS:
                described[record.pk] = (f"your passage “{excerpt}” already in this Datanet ({record.where}, in your "
                                        f"upload “{record.contribution.file_name}”)")
            elif record.contributor_id == getattr(user, "pk", None):
                described[record.pk] = (f"your row “{excerpt}” already in this Datanet ({record.where} of your "
                                        f"upload “{record.contribution.file_name}”)")
            elif perms.can_curate or (perms.can_view and record.status == RecordStatus.ACCEPTED):
                described[record.pk] = f"a row already in this Datanet, “{excerpt}”"
            else:
                described[record.pk] = "another contributor's row already in this Datanet"
    # Rows no longer there (a cached index may name them) are named without detail.
    return {pk: described.get(pk, "a row already in this Datanet") for pk in ids}


def review_progress(*, datanet: Datanet) -> dict:
    stats = datanet_stats(datanet=datanet)
    reviewed = stats["accepted"] + stats["rejected"]
    return {**stats, "reviewed": reviewed, "percent": round(100 * reviewed / stats["total"]) if stats["total"] else 100}


def versions_for(*, datanet: Datanet):
    return DatanetVersion.objects.filter(datanet=datanet).select_related("created_by").order_by("-number")


def version_get(*, datanet: Datanet, number: int) -> DatanetVersion:
    version = DatanetVersion.objects.filter(datanet=datanet, number=number).first()
    if version is None:
        raise Http404("No such version.")
    return version


def latest_version_rows_by_contributor(*, datanet: Datanet) -> tuple[DatanetVersion | None, dict[int, int]]:
    """The Datanet's latest version and, per contributor (user id), their rows in it that are still accepted
    (governance weighs a slashed stake's payout to honest contributors by them); (None, {}) before any version."""
    version = DatanetVersion.objects.filter(datanet=datanet).order_by("-number").first()
    if version is None:
        return None, {}
    counts = (VersionRecord.objects.filter(version=version, record__status=RecordStatus.ACCEPTED)
              .values("record__contributor_id").annotate(rows=Count("id")).order_by())
    return version, {row["record__contributor_id"]: row["rows"] for row in counts}


def leaderboard(*, datanet: Datanet, limit: int = 50) -> list[dict]:
    rows = (
        Record.objects.filter(datanet=datanet)
        .values("contributor__id", "contributor__username", "contributor__display_name")
        .annotate(
            total=Count("id"),
            accepted=Count("id", filter=Q(status=RecordStatus.ACCEPTED)),
            rejected=Count("id", filter=Q(status=RecordStatus.REJECTED)),
        )
    )
    board = []
    for row in rows:
        reviewed = row["accepted"] + row["rejected"]
        board.append(
            {
                "user_id": row["contributor__id"],
                "username": row["contributor__username"],
                "name": row["contributor__display_name"] or row["contributor__username"],
                "submitted": row["total"],
                "accepted": row["accepted"],
                "acceptance_rate": round(row["accepted"] / reviewed, 3) if reviewed else None,
            }
        )
    board.sort(key=lambda r: (-r["accepted"], r["username"]))
    return board[:limit]


def contributor_profile(*, datanet: Datanet, username: str) -> dict:
    records = Record.objects.filter(datanet=datanet, contributor__username=username)
    entry = next((row for row in leaderboard(datanet=datanet, limit=10_000) if row["username"] == username), None)
    if entry is None:
        raise Http404("This person has not contributed here.")
    versions = [
        {"version": version, "rows": version.records.filter(contributor__username=username).count()}
        for version in versions_for(datanet=datanet)
    ]
    contributions = Contribution.objects.filter(datanet=datanet, contributor__username=username)
    return {"entry": entry, "versions": versions, "contributions": contributions, "records": records}


def training_access_requests_for(*, datanet: Datanet):
    return TrainingAccessRequest.objects.filter(datanet=datanet).select_related("requester").order_by("state", "-created_at")


def trainable_versions_for(*, user):
    """Datanet versions this user may train on: for ModelFactory's form."""
    visible = datanets_visible_to(user=user)
    versions = DatanetVersion.objects.filter(datanet__in=visible).select_related("datanet")
    return [v for v in versions if datanet_permissions(datanet=v.datanet, user=user).can_train]


def versions_shared_row_counts(*, versions) -> dict[tuple[int, int], int]:
    """{(version id, version id): rows both hold} for each pair of these versions that share rows (a row
    must not be trained on twice: the training engine refuses duplicate row ids)."""
    ids = [v.pk for v in versions]
    shared = (VersionRecord.objects.filter(version_id__in=ids).values("record_id").annotate(n=Count("version_id"))
              .filter(n__gt=1).values_list("record_id", flat=True))
    holders: dict[int, list[int]] = {}
    for record_id, version_id in (VersionRecord.objects.filter(version_id__in=ids, record_id__in=shared)
                                  .order_by("record_id", "version_id").values_list("record_id", "version_id")):
        holders.setdefault(record_id, []).append(version_id)
    pairs: Counter = Counter()
    for versions_of_row in holders.values():
        for i, a in enumerate(versions_of_row):
            for b in versions_of_row[i + 1:]:
                pairs[(a, b)] += 1
    return dict(pairs)


def version_training_rows(*, version: DatanetVersion):
    """(row id, contributor id, fields) of a version's rows in row-id order: what a fine-tune trains on.
    Row ids are the `r<pk>` strings written into training manifests and attribution indexes."""
    rows = Record.objects.filter(versions=version).order_by("pk").values_list("pk", "contributor_id", "fields")
    return [(f"r{pk}", str(contributor_id), fields) for pk, contributor_id, fields in rows.iterator(chunk_size=2000)]


def records_by_uid(*, uids) -> dict:
    """Records for `r<pk>` row ids (attribution receipts name rows this way)."""
    pks = [int(uid[1:]) for uid in uids if isinstance(uid, str) and uid.startswith("r") and uid[1:].isdigit()]
    return {f"r{r.pk}": r for r in Record.objects.filter(pk__in=pks).select_related("datanet", "contributor")}


# --- Reads for insights' daily summaries: plain rows grouped by UTC day, for [start, end) datetimes.

def contribution_daily_totals(*, start, end) -> list[dict]:
    """Per (day, datanet id): uploads made in [start, end) and their validation outcome."""
    from django.db.models import Sum
    from django.db.models.functions import TruncDate

    return list(
        Contribution.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at")).values("day", "datanet_id")
        .annotate(contributions=Count("id"), submitted=Sum("rows_total"), invalid=Sum("rows_rejected"),
                  duplicate=Sum("rows_duplicate"), near_duplicate=Sum("rows_near_duplicate"))
        .order_by()
    )


def review_daily_totals(*, start, end) -> list[dict]:
    """Per (day, datanet id, status): rows whose curator decision (accepted/rejected) fell in [start, end)."""
    from django.db.models.functions import TruncDate

    return list(
        Record.objects.filter(reviewed_at__gte=start, reviewed_at__lt=end,
                              status__in=[RecordStatus.ACCEPTED, RecordStatus.REJECTED])
        .annotate(day=TruncDate("reviewed_at")).values("day", "datanet_id", "status")
        .annotate(n=Count("id")).order_by()
    )


def contributor_first_contributions() -> list[tuple]:
    """(contributor id, datanet id, time of their first upload there) for every pair that ever contributed."""
    from django.db.models import Min

    return list(Contribution.objects.values("contributor_id", "datanet_id").annotate(first=Min("created_at"))
                .order_by().values_list("contributor_id", "datanet_id", "first"))


def contributor_activity(*, start, end) -> list[tuple]:
    """Distinct (day, datanet id, contributor id) of uploads made in [start, end)."""
    from django.db.models.functions import TruncDate

    return list(Contribution.objects.filter(created_at__gte=start, created_at__lt=end)
                .annotate(day=TruncDate("created_at")).values_list("day", "datanet_id", "contributor_id")
                .distinct().order_by())


def datanet_ids_visible_to(*, user) -> dict[int, dict]:
    """{id: {slug, name}} of the Datanets this user may see (the insights pages list only these)."""
    return {d["id"]: d for d in datanets_visible_to(user=user).values("id", "slug", "name")}
