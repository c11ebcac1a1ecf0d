"""Reads of contributions (uploads) and of the curators' review queue.

A Datanet's recent uploads, a person's uploads with their rows' review outcome ("My contributions") and the
rows curators rejected, one contribution for someone allowed to see it, its row-errors CSV, and the review
queue with its filters and one row of it.
"""

from django.db.models import Count, Q
from django.http import Http404

from ..models import Contribution, Datanet, Record, RecordStatus
from .access import datanet_permissions
from .records import _search_fields


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
