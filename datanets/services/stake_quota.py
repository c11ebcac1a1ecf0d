"""The upload quota that scales with stake (issue #20): in a Datanet that requires a stake, a contributor may add
`rows_per_day` rows to its review queue per rolling 24 hours, more the more they stake (the rule is governance's,
`governance.selectors.stake_row_quota`; docs/governance.md). Rows counted are those accepted into review: rows the
upload refused (bad format, duplicates, over the quota) cost nothing.

Checked twice. At upload (`stake_quota_check_upload`), an exhausted quota, or JSON rows that would pass it, are
refused with the figures and what raises them: a courtesy, since uploads still waiting for validation have not
used any of it yet. A file's rows are known only once it is read, so validation (`stake_quota_cap`) accepts into
review only as many as are left and rejects the rest, each with that reason. That is the check that holds: it runs
first in the transaction that stores the accepted rows and starts by writing the contributor's `StakeQuotaLock`
row for the Datanet, which holds the row (PostgreSQL) or the database (SQLite) until the rows are committed, so
two uploads validated at the same moment take turns: the second counts the first's rows before taking its own.
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from rewards.amounts import format_open

from ..ingest.rows import content_preview
from ..models import Contribution, Datanet, RowError, StakeQuotaLock

OVER_QUOTA = "over_quota"  # RowError.code of rows refused by the quota
WINDOW = timedelta(days=1)


def _quota(*, datanet: Datanet, contributor):
    from lineage.hooks import (
        stake_row_quota,  # governance reads datanets: it registers this (governance/apps.py)
    )

    return stake_row_quota(user=contributor, datanet=datanet)


def _rows_added(*, datanet: Datanet, contributor, exclude_pk: int | None = None) -> int:
    recent = Contribution.objects.filter(datanet=datanet, contributor=contributor,
                                         created_at__gte=timezone.now() - WINDOW)
    if exclude_pk is not None:
        recent = recent.exclude(pk=exclude_pk)
    return int(recent.aggregate(rows=Sum("rows_accepted"))["rows"] or 0)


def quota_words(quota, *, datanet: Datanet) -> str:
    """'You may upload N rows per day to X; staking more raises it (…)' with the figures behind N."""
    raise_it = ("staking more raises it" if quota.rows_per_day < quota.most else "that is the most any stake gives")
    return (f"You may upload {quota.rows_per_day:,} rows per day to {datanet.name}; {raise_it} "
            f"({quota.rows_per_required_stake:,} rows per {format_open(quota.required)} OPEN staked, at most "
            f"{quota.most:,}; your wallets have {format_open(quota.stake)} OPEN staked on it: /governance/stakes/).")


def stake_quota_check_upload(*, datanet: Datanet, contributor, incoming_rows: int | None = None) -> None:
    """Refuse an upload to a staked Datanet when the contributor's quota is used up, or when `incoming_rows` (JSON
    rows: known before reading) would pass it. A file (rows unknown yet) is capped when it is validated."""
    quota = _quota(datanet=datanet, contributor=contributor)
    if quota is None:
        return
    added = _rows_added(datanet=datanet, contributor=contributor)
    left = max(0, quota.rows_per_day - added)
    if left == 0:
        raise ValidationError(f"{quota_words(quota, datanet=datanet)} You have added {added:,} in the last 24 hours: "
                              "none are left today.")
    if incoming_rows is not None and incoming_rows > left:
        raise ValidationError(f"{quota_words(quota, datanet=datanet)} You have added {added:,} in the last 24 hours, "
                              f"so {left:,} are left today; you sent {incoming_rows:,}. Send at most {left:,}.")


def stake_quota_for(*, contribution: Contribution):
    """The quota the contribution's rows are held to (a `governance.selectors.StakeRowQuota`), or None when none
    applies. Read before the transaction that stores the rows: `stake_quota_cap` must open it."""
    return _quota(datanet=contribution.datanet, contributor=contribution.contributor)


def _quota_lock(*, datanet: Datanet, contributor) -> None:
    """Write the contributor's lock row for the Datanet (made on first use). Both statements are writes: on
    PostgreSQL the UPDATE holds the row until commit (a second validation's UPDATE waits for it, and its count,
    read after, then sees the rows the first stored); on SQLite a transaction whose first statement writes waits
    for the database's write lock (up to the busy timeout) and holds it until commit. A transaction that read
    first would be refused the lock at once instead ("database is locked"): hence first."""
    now = timezone.now()
    StakeQuotaLock.objects.bulk_create([StakeQuotaLock(datanet=datanet, contributor=contributor, locked_at=now)],
                                       ignore_conflicts=True)  # a concurrent first insert waits, then does nothing
    StakeQuotaLock.objects.filter(datanet=datanet, contributor=contributor).update(locked_at=now)


def stake_quota_cap(*, contribution: Contribution, records: list, quota) -> tuple[list, list[RowError]]:
    """Split an upload's rows bound for review (in file order; each has `row_number`, `line_number`, `fields`)
    into those the quota leaves room for and a `RowError` for each of the rest. `quota` is `stake_quota_for`'s.

    Call it first inside the transaction that then stores the rows it returns and the contribution's
    `rows_accepted`: it locks the contributor's quota on the Datanet for the rest of that transaction, so the rows
    it counts and the rows it admits cannot be raced by another upload's validation."""
    if quota is None:
        return records, []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("stake_quota_cap must run inside the transaction that stores the rows it admits.")
    _quota_lock(datanet=contribution.datanet, contributor=contribution.contributor)
    added = _rows_added(datanet=contribution.datanet, contributor=contribution.contributor, exclude_pk=contribution.pk)
    left = max(0, quota.rows_per_day - added)
    if len(records) <= left:
        return records, []
    words = quota_words(quota, datanet=contribution.datanet)
    refused = [RowError(contribution=contribution, row_number=r.row_number, line_number=r.line_number,
                        code=OVER_QUOTA, content=content_preview(r.fields) or {},
                        message=f"Over your daily quota: {left:,} of {quota.rows_per_day:,} rows were left today "
                                f"when this upload was read. {words}"[:500])
               for r in records[left:]]
    return records[:left], refused
