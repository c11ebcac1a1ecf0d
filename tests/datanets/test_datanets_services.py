"""Datanets services end to end on the real engine: uploads, validation, de-duplication, review,
versions and their verification.

The cast of tests/conftest.py: alice owns the Datanet, dora contributes, bob curates once alice makes him its
curator, charlie is a stranger (who may still upload: the Datanet is open to anyone)."""

import gzip
import io
import re
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent
from datanets import selectors, services
from datanets.models import Contribution, ContributionState, Record, RecordStatus, Role, RowError

pytestmark = pytest.mark.django_db

LABELS = ["billing", "shipping", "account"]
GOOD_CSV = (
    "text,label\n"
    "I was charged twice for my order,billing\n"
    "Where is my parcel? It has been ten days,shipping\n"
    "I cannot log in to my account after the update,account\n"
)


@pytest.fixture
def datanet(alice):
    return services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                   label_set=LABELS, summary="Customer support tickets by intent")


def upload(datanet, user, content: bytes, name="rows.csv", django_capture_on_commit_callbacks=None):
    return services.contribution_create_from_file(
        datanet=datanet, contributor=user, uploaded_file=SimpleUploadedFile(name, content)
    )


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    """Upload and run the (eager) validation task that is queued on commit."""

    def run(datanet, user, content, name="rows.csv"):
        with django_capture_on_commit_callbacks(execute=True):
            contribution = upload(datanet, user, content, name)
        contribution.refresh_from_db()
        return contribution

    return run


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_kept(datanet, dora, send):
    content = GOOD_CSV + ",billing\nThis label is wrong,refunds\n" + ("x" * 20_000) + ",billing\n"
    contribution = send(datanet, dora, content.encode())
    assert contribution.state == ContributionState.IN_REVIEW
    assert (contribution.rows_total, contribution.rows_accepted, contribution.rows_rejected) == (6, 3, 3)
    errors = {e.line_number: (e.code, e.message) for e in contribution.row_errors.all()}
    assert errors[5][0] == "empty_text"
    assert errors[6][0] == "unknown_label" and "refunds" in errors[6][1]
    assert errors[7][0] == "too_long"
    assert set(Record.objects.filter(contribution=contribution).values_list("contributor__username", flat=True)) == {"dora"}


def test_exact_duplicates_never_count_twice(datanet, dora, charlie, send):
    first = send(datanet, dora, GOOD_CSV.encode())
    again = send(datanet, charlie, (GOOD_CSV + "I was charged twice for my order,billing\n").encode())
    assert first.rows_accepted == 3
    assert again.rows_accepted == 0 and again.rows_duplicate == 4
    original = Record.objects.get(contribution=first, row_number=1)
    duplicate_errors = RowError.objects.filter(contribution=again, code="duplicate")
    assert duplicate_errors.filter(duplicate_of=original).count() == 2  # against the Datanet and within the upload
    assert Record.objects.filter(datanet=datanet).count() == 3


def test_same_text_with_another_label_is_kept_and_flagged(datanet, dora, charlie, send):
    send(datanet, dora, GOOD_CSV.encode())
    conflict = send(datanet, charlie, b"text,label\nI was charged twice for my order,shipping\n")
    record = conflict.records.get()
    assert record.status == RecordStatus.PENDING
    assert record.quality["flags"][0]["kind"] == "label_conflict"


def test_near_duplicates_are_flagged_with_the_row_they_match(datanet, dora, charlie, send):
    send(datanet, dora, GOOD_CSV.encode())
    near = send(datanet, charlie, b"text,label\nI was charged twice for my order!!,billing\nTotally unrelated question about fonts,account\n")
    flagged, unrelated = near.records.order_by("row_number")
    assert flagged.near_duplicate_of.fields["text"] == "I was charged twice for my order"
    assert flagged.near_duplicate_score >= 0.8
    assert unrelated.near_duplicate_of is None
    assert near.rows_near_duplicate == 1


def test_label_conflicts_are_accepted_flagged_and_filterable_in_the_review_queue(datanet, dora, charlie, send):
    send(datanet, dora, GOOD_CSV.encode())
    # Same ticket, another label: one of the two labels is wrong, so the curator must see both.
    contribution = send(datanet, charlie, b"text,label\nI was charged twice for my order,shipping\nA new question,account\n")
    conflict, fresh = contribution.records.order_by("row_number")
    assert conflict.quality["label_conflict"] is True and "label_conflict" not in fresh.quality
    assert [f["kind"] for f in conflict.quality["flags"]] == ["label_conflict"]
    assert list(selectors.review_queue(datanet=datanet, flag="label_conflict")) == [conflict]
    assert fresh in selectors.review_queue(datanet=datanet, flag="")


def test_near_duplicates_within_one_upload_link_to_the_stored_earlier_row(datanet, dora, charlie, send):
    send(datanet, dora, GOOD_CSV.encode())
    body = (
        "text,label\n"
        "My replacement card was never delivered to my home address,billing\n"
        "Please close my account and delete all of my personal data,account\n"
        "My replacement card was never delivered to my home address!,billing\n"
        "I was charged twice for my order!!,billing\n"
        "my replacement card was never  delivered to my home address,billing\n"
    )
    contribution = send(datanet, charlie, body.encode())
    first, unrelated, edit, of_existing = contribution.records.order_by("row_number")
    assert contribution.row_errors.get().duplicate_of == first  # an exact copy links to the stored row
    assert edit.near_duplicate_of == first and edit.near_duplicate_score >= 0.8
    assert of_existing.near_duplicate_of.contribution.contributor == dora  # a Datanet row wins
    assert first.near_duplicate_of is None and unrelated.near_duplicate_of is None
    assert contribution.rows_near_duplicate == 2
    assert [f["kind"] for f in edit.quality["flags"]] == ["near_duplicate"]
    assert edit.quality["length"] == len(edit.fields["text"]) + len("billing")
    # The stored rows joined the Datanet's index: a later upload finds them.
    later = send(datanet, dora, b"text,label\nPlease close my account and delete all of my personal data.,account\n")
    assert later.records.get().near_duplicate_of == unrelated


def test_near_dup_index_cache_follows_settings_and_never_misses_rows(datanet, alice, dora, charlie, send, settings):
    send(datanet, dora, GOOD_CSV.encode())
    index = services.near_dup_index_load(datanet=datanet)
    assert (len(index), index.threshold, index.shingle_size) == (3, 0.8, 5)
    settings.DATANETS_NEAR_DUP_SHINGLE_SIZE = 4
    assert services.near_dup_index_load(datanet=datanet).shingle_size == 4  # rebuilt from the rows
    services.datanet_update(datanet=datanet, actor=alice, near_dup_threshold=0.9)
    datanet.refresh_from_db()
    index = services.near_dup_index_load(datanet=datanet)
    assert (len(index), index.threshold, index.shingle_size) == (3, 0.9, 4)

    # Two validations of one Datanet at once: the later save carries a high-water mark past rows the
    # earlier one stored, which its cache never saw. The next load notices and rebuilds.
    stale = services.near_dup_index_load(datanet=datanet)
    send(datanet, charlie, b"text,label\nThe courier left my parcel at the wrong house again,shipping\n")
    services.near_dup_index_save(datanet=datanet, index=stale)
    services.near_duplicates._near_dup_cache_path(datanet).with_suffix(".hwm").write_text(str(Record.objects.latest("pk").pk))
    later = send(datanet, dora, b"text,label\nThe courier left my parcel at the wrong house again!,shipping\n")
    assert later.records.get().near_duplicate_of.contributor == charlie


@pytest.mark.parametrize(
    "content,name,code",
    [
        (b"", "empty.csv", None),
        (gzip.compress(b"text,label\n" + b"a" * 50_000_000), "bomb.csv.gz", "gzip_ratio"),
        (b"\x00\x01\x02garbage\xff\xfe" * 100, "rows.csv", None),
        (b"label\nbilling\n", "rows.csv", "missing_column"),
    ],
)
def test_broken_files_get_one_clear_message_and_nothing_is_written(datanet, dora, send, content, name, code, settings):
    if not content:
        with pytest.raises(ValidationError, match="empty"):
            upload(datanet, dora, content, name)
        return
    contribution = send(datanet, dora, content, name)
    assert contribution.state == ContributionState.FAILED
    assert contribution.error_message
    if code:
        assert code in contribution.error_code
    assert not Record.objects.filter(contribution=contribution).exists()


def test_validation_is_idempotent_on_redelivery(datanet, dora, send):
    contribution = send(datanet, dora, GOOD_CSV.encode())
    # A redelivered task for a finished contribution changes nothing.
    services.contribution_validate(contribution_id=contribution.pk)
    # A task killed mid-way left the contribution "validating" and wrote no rows: it runs again cleanly.
    Record.objects.filter(contribution=contribution).delete()
    Contribution.objects.filter(pk=contribution.pk).update(state=ContributionState.VALIDATING)
    services.contribution_validate(contribution_id=contribution.pk)
    assert Record.objects.filter(contribution=contribution).count() == 3


def test_an_unexpected_validation_error_is_hidden_from_the_contributor(datanet, dora, send, monkeypatch, client,
                                                                      caplog):
    class Exploding:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("near-dup cache at /srv/lineage/var/cache is corrupt")

    monkeypatch.setattr(services.validation, "UploadScreener", Exploding)
    contribution = send(datanet, dora, GOOD_CSV.encode())
    assert contribution.state == ContributionState.FAILED and contribution.error_code == "unexpected_error"
    error_id = re.search(r"error id ([0-9a-f]{12})", contribution.error_message).group(1)
    assert "/srv/lineage" not in contribution.error_message and "RuntimeError" not in contribution.error_message
    assert error_id in caplog.text and "/srv/lineage" in caplog.text  # the details are in the logs
    assert not Record.objects.filter(contribution=contribution).exists()
    assert AuditEvent.objects.filter(action="contribution.failed", details__code="unexpected_error").count() == 1
    client.force_login(dora)
    page = client.get(contribution.get_absolute_url()).content.decode()
    assert error_id in page and "/srv/lineage" not in page


def test_validation_whose_worker_keeps_dying_fails_with_a_reason(datanet, dora, django_capture_on_commit_callbacks,
                                                                 settings):
    with django_capture_on_commit_callbacks(execute=False):  # the task is never delivered here
        contribution = upload(datanet, dora, GOOD_CSV.encode())
    # Three deliveries started it and died mid-way (the state they leave behind); the fourth gives up.
    Contribution.objects.filter(pk=contribution.pk).update(state=ContributionState.VALIDATING,
                                                           attempts=settings.JOB_MAX_ATTEMPTS)
    contribution = services.contribution_validate(contribution_id=contribution.pk)
    assert contribution.state == ContributionState.FAILED and contribution.error_code == "too_many_attempts"
    assert contribution.error_message.startswith(
        f"The upload validation stopped after {settings.JOB_MAX_ATTEMPTS} attempts: the worker crashed each time.")
    assert "Upload the file again" in contribution.error_message
    assert not Record.objects.filter(contribution=contribution).exists()


def test_files_are_stored_content_addressed_never_by_user_name(datanet, dora, send):
    contribution = send(datanet, dora, GOOD_CSV.encode(), name="../../etc/passwd.csv")
    assert contribution.storage_name.endswith(contribution.file_sha256)
    assert ".." not in contribution.storage_name and contribution.file_name == "passwd.csv"
    with default_storage.open(contribution.storage_name) as fh:
        assert fh.read() == GOOD_CSV.encode()


def test_daily_quota_is_enforced(datanet, dora, settings):
    settings.DATANETS_DAILY_CONTRIBUTIONS = 1
    upload(datanet, dora, GOOD_CSV.encode())
    with pytest.raises(ValidationError, match="daily limit"):
        upload(datanet, dora, GOOD_CSV.encode())


def test_members_only_datanet_refuses_strangers(alice, charlie):
    private = services.datanet_create(owner=alice, name="Private", task_type="text", visibility="private",
                                      contribution_policy="members")
    with pytest.raises(PermissionDenied):
        upload(private, charlie, b"text\nhello there\n")
    assert private not in selectors.datanets_visible_to(user=charlie)
    assert not selectors.datanet_permissions(datanet=private, user=charlie).can_view


def test_review_needs_a_curator_and_a_reason_to_reject(datanet, alice, bob, dora, send, mailoutbox,
                                                       django_capture_on_commit_callbacks):
    contribution = send(datanet, dora, GOOD_CSV.encode())
    ids = list(contribution.records.values_list("pk", flat=True))
    with pytest.raises(PermissionDenied):
        services.records_review(datanet=datanet, reviewer=bob, record_ids=ids, decision="accept")
    services.membership_set(datanet=datanet, actor=alice, user=bob, role=Role.CURATOR)
    with pytest.raises(ValidationError, match="Say why"):
        services.records_review(datanet=datanet, reviewer=bob, record_ids=ids[:1], decision="reject")
    services.records_review(datanet=datanet, reviewer=bob, record_ids=ids[:1], decision="reject", reason="spam")
    with django_capture_on_commit_callbacks(execute=True):  # the email is queued on commit
        assert services.records_review(datanet=datanet, reviewer=bob, record_ids=ids, decision="accept") == 3
    contribution.refresh_from_db()
    assert contribution.state == ContributionState.DONE
    assert len(mailoutbox) == 1 and "3 rows accepted" in mailoutbox[0].body
    assert AuditEvent.objects.filter(action="record.accept", actor=bob).exists()


@pytest.fixture
def two_versions(datanet, alice, dora, charlie, send):
    first = send(datanet, dora, GOOD_CSV.encode())
    services.records_review(datanet=datanet, reviewer=alice, record_ids=first.records.values_list("pk", flat=True), decision="accept")
    v1 = services.version_publish(datanet=datanet, actor=alice, notes="first")
    second = send(datanet, charlie, b"text,label\nPlease close my account for good,account\n")
    services.records_review(datanet=datanet, reviewer=alice, record_ids=second.records.values_list("pk", flat=True), decision="accept")
    v2 = services.version_publish(datanet=datanet, actor=alice)
    return v1, v2


def test_versions_reverify_and_diff(two_versions):
    v1, v2 = two_versions
    assert (v1.number, v1.row_count, v2.row_count) == (1, 3, 4)
    assert len(v1.manifest_hash) == 64 and v1.manifest_hash != v2.manifest_hash
    assert services.version_verify(version=v1).ok and services.version_verify(version=v2).ok
    diff = services.version_diff(a=v1, b=v2)
    assert diff["added"] == 1 and diff["removed"] == 0 and diff["added_by_contributor"] == {"Charlie": 1}  # the public name, as on every page


def test_publishing_nothing_new_is_refused(two_versions, datanet, alice):
    with pytest.raises(ValidationError, match="nothing new"):
        services.version_publish(datanet=datanet, actor=alice)


def test_tampering_with_a_version_file_is_detected(two_versions):
    v1, _ = two_versions
    path = Path(default_storage.path(f"{v1.storage_prefix}/data.parquet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    check = services.version_verify(version=v1)
    assert not check.ok and any("data.parquet" in problem for problem in check.problems)


def test_tampering_with_the_database_rows_is_detected(two_versions):
    v1, _ = two_versions
    v1.versionrecord_set.first().delete()
    check = services.version_verify(version=v1)
    assert not check.ok and "database" in check.problems[0]


def test_csv_export_neutralises_formulas(datanet, alice, dora, send):
    contribution = send(datanet, dora, b'text,label\n"=HYPERLINK(""http://evil"",""x"")",billing\n')
    services.records_review(datanet=datanet, reviewer=alice, record_ids=contribution.records.values_list("pk", flat=True), decision="accept")
    version = services.version_publish(datanet=datanet, actor=alice)
    _, name, stream = services.version_export(version=version, fmt="csv")
    text = b"".join(stream).decode()
    assert name == "support-tickets-v1.csv"
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text


def test_description_markdown_is_rendered_safely():
    from datanets.templatetags.datanet_tags import render_markdown

    html = render_markdown("**bold** <script>alert(1)</script> [x](javascript:alert(1))")
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "javascript:" not in html


def test_labels_in_use_cannot_be_removed(datanet, alice, dora, charlie, send):
    send(datanet, dora, GOOD_CSV.encode())
    with pytest.raises(ValidationError, match="cannot be removed"):
        services.datanet_update(datanet=datanet, actor=alice, label_set=["billing", "account"])
    services.datanet_update(datanet=datanet, actor=alice, label_set=LABELS + ["refunds"])
    datanet.refresh_from_db()
    assert datanet.label_set[-1] == "refunds"
    with pytest.raises(PermissionDenied):
        services.datanet_update(datanet=datanet, actor=charlie, summary="mine now")


def test_rows_typed_as_json_take_the_same_path(datanet, dora, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        contribution = services.contribution_create_from_rows(
            datanet=datanet, contributor=dora, rows=[{"text": "Refund my last invoice", "label": "billing"}, {"text": 5}]
        )
    contribution.refresh_from_db()
    assert contribution.rows_accepted == 1 and contribution.rows_rejected == 1
    assert io.BytesIO(default_storage.open(contribution.storage_name).read()).read().startswith(b'{"text"')
