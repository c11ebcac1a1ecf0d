"""Upload quotas that scale with stake: in a Datanet that requires a stake, a contributor may add
`GOVERNANCE_STAKE_ROWS_PER_DAY` rows per rolling 24 hours to its review queue for each required stake's worth
of OPEN actively staked on it, up to `GOVERNANCE_STAKE_ROWS_MAX_MULTIPLE` times that. JSON rows past the quota
are refused at upload with the figures and what raises them; a file's rows past it are rejected one by one
when it is read, with the same words; staking more raises the quota; owners and curators are exempt."""

import hashlib
import json
import threading
import time
import traceback
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection
from django.utils import timezone

from datanets.models import Contribution, ContributionSource, ContributionState, Record, RowError
from datanets.services import contribution_validate, datanet_create
from datanets.services.stake_quota import OVER_QUOTA
from governance.models import ActionState
from governance.selectors import stake_row_quota
from governance.services import stake_request, stake_requirement_set, stakes_index, wallet_action_run

OPEN = 10**18
API = "/api/v1/datanets/"


@pytest.fixture
def staked(governance, dev_signing, settings, alice, charlie, link_wallet, key_client,
           django_capture_on_commit_callbacks):
    """Alice's Datanet requires 10 OPEN staked; 4 rows per day per 10 OPEN, at most 3 × 4. Charlie stakes 10 OPEN
    from a dev wallet. `post(user, rows=… | file=…)` contributes through the API, validation run on commit;
    `stake(amount)` has Charlie stake more."""
    settings.GOVERNANCE_STAKE_ROWS_PER_DAY = 4
    settings.GOVERNANCE_STAKE_ROWS_MAX_MULTIPLE = 3
    datanet = datanet_create(owner=alice, name="Support intents", task_type="text-classification",
                             label_set=["billing", "shipping"], visibility="public")
    stake_requirement_set(datanet=datanet, actor=alice, minimum=10 * OPEN)
    link_wallet(charlie, governance.fund(governance.chain.wallets[2], 100 * OPEN))

    def stake(amount):
        assert wallet_action_run(action_id=stake_request(user=charlie, datanet=datanet, amount=amount).pk
                                 ).state == ActionState.DONE
        stakes_index()

    def post(user, **body):
        client = key_client(user, "contribute")
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"{API}{datanet.slug}/contributions/", body,
                               format="multipart" if "file" in body else "json")

    stake(10 * OPEN)
    return datanet, post, stake


def _rows(start, count):
    return [{"text": f"my parcel {n} never arrived", "label": "shipping"} for n in range(start, start + count)]


def test_the_quota_grows_with_the_stake_up_to_the_cap(staked, settings, alice, charlie):
    datanet, _, stake = staked
    quota = stake_row_quota(user=charlie, datanet=datanet)
    assert (quota.rows_per_day, quota.stake, quota.required, quota.most) == (4, 10 * OPEN, 10 * OPEN, 12)
    stake(5 * OPEN)
    assert stake_row_quota(user=charlie, datanet=datanet).rows_per_day == 6  # 4 × 15 / 10
    stake(45 * OPEN)
    assert stake_row_quota(user=charlie, datanet=datanet).rows_per_day == 12  # 4 × 6 = 24, capped at 3 × 4
    assert stake_row_quota(user=alice, datanet=datanet) is None  # the owner is exempt, as from the stake
    settings.GOVERNANCE_STAKE_ROWS_PER_DAY = 0
    assert stake_row_quota(user=charlie, datanet=datanet) is None  # 0: no row quota


def test_json_rows_past_the_quota_are_refused_with_what_raises_it(staked, charlie, alice):
    datanet, post, stake = staked
    response = post(charlie, rows=_rows(0, 3))
    assert response.status_code == 202, response.json()
    assert Contribution.objects.get(pk=response.json()["id"]).rows_accepted == 3

    response = post(charlie, rows=_rows(3, 2))
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "You may upload 4 rows per day to Support intents; staking more raises it (4 rows per 10 OPEN staked, at "
        "most 12; your wallets have 10 OPEN staked on it: /governance/stakes/). You have added 3 in the last 24 "
        "hours, so 1 are left today; you sent 2. Send at most 1.")
    assert post(charlie, rows=_rows(3, 1)).status_code == 202
    response = post(charlie, rows=_rows(4, 1))
    assert response.status_code == 400 and response.json()["detail"].endswith(
        "You have added 4 in the last 24 hours: none are left today.")

    stake(10 * OPEN)  # 20 OPEN: 8 rows per day
    assert post(charlie, rows=_rows(4, 4)).status_code == 202
    assert post(charlie, rows=_rows(8, 1)).status_code == 400
    # The window rolls: rows added more than 24 hours ago no longer count.
    Contribution.objects.filter(contributor=charlie).update(created_at=timezone.now() - timedelta(hours=25))
    assert post(charlie, rows=_rows(8, 8)).status_code == 202
    # The owner is not held to it.
    assert post(alice, rows=_rows(100, 12)).status_code == 202


def test_a_files_rows_past_the_quota_are_rejected_each_with_the_reason(staked, charlie, client):
    datanet, post, _ = staked
    assert post(charlie, rows=_rows(0, 1)).status_code == 202
    # A duplicate row costs nothing: only rows accepted into review count.
    lines = ["text,label", "my parcel 0 never arrived,shipping"] + [f"refund order {n},billing" for n in range(5)]
    file = SimpleUploadedFile("tickets.csv", "\n".join(lines).encode(), content_type="text/csv")
    response = post(charlie, file=file)
    assert response.status_code == 202, response.json()
    contribution = Contribution.objects.get(pk=response.json()["id"])
    assert (contribution.rows_total, contribution.rows_accepted, contribution.rows_duplicate) == (6, 3, 1)
    refused = list(RowError.objects.filter(contribution=contribution, code=OVER_QUOTA).order_by("row_number"))
    assert [e.row_number for e in refused] == [5, 6] and contribution.rows_rejected == 2
    assert refused[0].content == {"text": "refund order 3", "label": "billing"}
    assert refused[0].message.startswith("Over your daily quota: 3 of 4 rows were left today when this upload was "
                                         "read. You may upload 4 rows per day to Support intents; staking more "
                                         "raises it")
    # The contributor sees why on the contribution's page.
    client.force_login(charlie)
    page = client.get(contribution.get_absolute_url())
    assert page.status_code == 200 and "Over your daily quota" in page.content.decode()
    # Used up: the next file is refused at upload.
    response = post(charlie, file=SimpleUploadedFile("more.csv", b"text,label\nanother one,billing\n",
                                                     content_type="text/csv"))
    assert response.status_code == 400 and "none are left today" in response.json()["detail"]


def _queued_upload(*, datanet, contributor, rows) -> Contribution:
    """An upload stored and waiting for its validation task, as `contribution_create_from_rows` leaves it."""
    payload = "".join(json.dumps(row) + "\n" for row in rows).encode()
    sha = hashlib.sha256(payload).hexdigest()
    name = default_storage.save(f"contributions/{sha[:2]}/{sha[2:4]}/{sha}", ContentFile(payload))
    return Contribution.objects.create(datanet=datanet, contributor=contributor, source=ContributionSource.API_ROWS,
                                       file_sha256=sha, file_name="rows.jsonl", storage_name=name,
                                       size_bytes=len(payload), progress_total=len(payload))


CLAIM_DELIVERIES = 50


def _validate_together(contributions) -> list[str]:
    """Validate each contribution in its own thread (its own database connection), all released at once by a
    barrier, as workers that picked the uploads up at the same moment; returns the traceback of anything raised."""
    barrier, raised = threading.Barrier(len(contributions)), []

    def validate(pk):
        try:
            barrier.wait(timeout=30)
            for delivery in range(CLAIM_DELIVERIES):
                try:
                    contribution_validate(contribution_id=pk)
                    break
                except OperationalError as exc:
                    # SQLite refuses (rather than waits for) a write in a transaction that read first while
                    # another connection writes: two claims at the same instant (`lineage.jobs.claim_job`) can
                    # meet that. The claim wrote nothing; the task is delivered again, as the broker would.
                    if connection.vendor != "sqlite" or "locked" not in str(exc) or delivery == CLAIM_DELIVERIES - 1:
                        raise
                    time.sleep(0.02)
        except BaseException as exc:  # reported by the test, not lost in the thread
            raised.append("".join(traceback.format_exception(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=validate, args=(c.pk,)) for c in contributions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a validation never finished"
    return raised


# Three races: one may happen not to overlap. Without the lock, 6 of 8 such races on PostgreSQL and 2 of 8 on
# SQLite admitted 6 rows between them (measured when the lock was written).
@pytest.mark.parametrize("race", [1, 2, 3])
@pytest.mark.django_db(transaction=True)
def test_uploads_validated_at_the_same_moment_never_pass_the_quota_together(staked, charlie, race):
    """Two uploads of 3 rows each, both queued while 4 rows are left, validated by two workers at once: the quota
    check and the rows it admits are one locked step per contributor and Datanet, so one upload takes its 3 rows
    and the other only the 1 left (its other 2 rejected as over the quota), never 6 between them."""
    datanet, _, _ = staked  # 4 rows per day for Charlie
    texts = [["refund order 1", "parcel lost at depot", "invoice twice"],
             ["card declined again", "courier never came", "address typo"]]
    uploads = [_queued_upload(datanet=datanet, contributor=charlie,
                              rows=[{"text": text, "label": "billing"} for text in batch]) for batch in texts]

    raised = _validate_together(uploads)
    assert not raised, "\n".join(raised)

    for upload in uploads:
        upload.refresh_from_db()
    assert [u.state for u in uploads] == [ContributionState.IN_REVIEW] * 2
    assert sorted(u.rows_accepted for u in uploads) == [1, 3]
    assert Record.objects.filter(datanet=datanet, contributor=charlie).count() == 4
    short = min(uploads, key=lambda u: u.rows_accepted)
    refused = RowError.objects.filter(contribution=short, code=OVER_QUOTA)
    assert refused.count() == 2 and short.rows_rejected == 2
    assert refused.first().message.startswith("Over your daily quota: 1 of 4 rows were left today")
