"""Counts and summaries of Datanets: statistics, review progress, leaderboards, insights' daily rows.

A Datanet's row counts by status and label distribution (its page, `/stats/`), the curators' review progress,
the contributors' leaderboard and one contributor's profile, and the plain per-day rows insights' daily
summaries are built from.
"""

from django.db.models import Count, Q
from django.http import Http404

from ..models import Contribution, Datanet, Record, RecordStatus, RowError
from .access import datanets_visible_to
from .records import versions_for


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


def review_progress(*, datanet: Datanet) -> dict:
    stats = datanet_stats(datanet=datanet)
    reviewed = stats["accepted"] + stats["rejected"]
    return {**stats, "reviewed": reviewed, "percent": round(100 * reviewed / stats["total"]) if stats["total"] else 100}


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
