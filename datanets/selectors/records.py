"""Reads of a Datanet's rows and versions.

Rows for the data viewer (a version's, or the live accepted rows) and their text search, the documents of a
Documents Datanet, the rows of a version diff, how rows already in a Datanet are named to a contributor, the
versions of a Datanet, the versions a user may train on and the rows they share, a version's training rows and
records by their `r<pk>` row ids.
"""

from collections import Counter

from django.db.models import Count
from django.db.models.fields.json import KeyTextTransform
from django.http import Http404

from ..models import (
    DOCUMENT_PASSAGE_FIELDS,
    Datanet,
    DatanetVersion,
    Record,
    RecordStatus,
    VersionRecord,
)
from .access import datanet_permissions, datanets_visible_to


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
                                                        "line_number", "contribution__file_name",
                                                        "contribution__source"))
        for record in records:
            excerpt = record.excerpt if len(record.excerpt) <= 80 else record.excerpt[:79] + "…"
            if record.contributor_id == getattr(user, "pk", None) and record.line_number is None and set(
                    record.fields) == DOCUMENT_PASSAGE_FIELDS:
                described[record.pk] = (f"your passage “{excerpt}” already in this Datanet ({record.where}, in your "
                                        f"upload “{record.contribution.file_name}”)")
            elif record.contributor_id == getattr(user, "pk", None):
                described[record.pk] = (f"your row “{excerpt}” already in this Datanet ({record.where} of your "
                                        f"upload “{record.contribution.shown_name}”)")
            elif perms.can_curate or (perms.can_view and record.status == RecordStatus.ACCEPTED):
                described[record.pk] = f"a row already in this Datanet, “{excerpt}”"
            else:
                described[record.pk] = "another contributor's row already in this Datanet"
    # Rows no longer there (a cached index may name them) are named without detail.
    return {pk: described.get(pk, "a row already in this Datanet") for pk in ids}


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
