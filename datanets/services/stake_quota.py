"""The upload quota that scales with stake (issue #20): in a Datanet that requires a stake, a contributor may add
`rows_per_day` rows to its review queue per rolling 24 hours, more the more they stake (the rule is governance's,
`governance.selectors.stake_row_quota`; docs/governance.md). Rows counted are those accepted into review: rows the
upload refused (bad format, duplicates, over the quota) cost nothing.

Checked twice. At upload (`stake_quota_check_upload`), an exhausted quota, or JSON rows that would pass it, are
refused with the figures and what raises them. A file's rows are known only once it is read, so validation
(`stake_quota_cap`) accepts into review only as many as are left and rejects the rest, each with that reason.
Two uploads validated at the very same moment may each see the same rows left (validation takes no lock).
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.utils import timezone

from rewards.amounts import format_open

from ..ingest.rows import content_preview
from ..models import Contribution, Datanet, RowError

OVER_QUOTA = "over_quota"  # RowError.code of rows refused by the quota
WINDOW = timedelta(days=1)


def _quota(*, datanet: Datanet, contributor):
    from governance.selectors import stake_row_quota  # governance reads datanets: imported when used

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


def stake_quota_cap(*, contribution: Contribution, records: list) -> tuple[list, list[RowError]]:
    """Split an upload's rows bound for review (in file order; each has `row_number`, `line_number`, `fields`)
    into those the quota leaves room for and a `RowError` for each of the rest."""
    quota = _quota(datanet=contribution.datanet, contributor=contribution.contributor)
    if quota is None:
        return records, []
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
