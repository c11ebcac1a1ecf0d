"""Issue #22, review queue comforts: each row has its own Accept and Reject (htmx: the row is swapped, the
page is not reloaded), a classification row can be relabelled with its label picker before it is accepted
(an empty picker says "Choose a label"), and j / k move between rows (static/js/review_queue.js)."""

import re

import pytest
from browser_support import assert_accessible, login
from django.core.exceptions import PermissionDenied, ValidationError
from playwright.sync_api import expect

from accounts.models import AuditEvent
from datanets import review_actions
from datanets.models import Record, RecordStatus

ROWS = [{"text": "I was charged twice for March", "label": "shipping"},
        {"text": "Where is my parcel, tracking is stuck", "label": "shipping"},
        {"text": "I cannot log in to my account", "label": "account"}]
LABELS = ["billing", "shipping", "account"]


@pytest.fixture
def queue(datanet_factory, upload_rows, alice, dora):
    """Alice's ticket Datanet with Dora's three rows waiting for review (the first one mislabelled)."""
    datanet = datanet_factory(alice, name="Tickets", label_set=LABELS)
    upload_rows(datanet, dora, ROWS)
    records = list(Record.objects.filter(datanet=datanet).order_by("row_number"))
    return datanet, records


# --- The write: relabel, then accept, in one transaction ------------------------------------------------

@pytest.mark.django_db
def test_a_curator_relabels_a_waiting_row_and_accepts_it_audited(queue, alice):
    datanet, (charged, *_) = queue
    accepted = review_actions.records_accept_relabelled(datanet=datanet, reviewer=alice, record_ids=[charged.pk],
                                                        labels={charged.pk: "billing"})
    charged.refresh_from_db()
    assert accepted == 1 and charged.status == RecordStatus.ACCEPTED
    assert charged.label == "billing" and charged.fields["label"] == "billing"
    assert charged.fields["text"] == ROWS[0]["text"]  # only the label changed
    event = AuditEvent.objects.get(action="record.relabel")
    assert event.actor == alice and event.details == {"record": charged.pk, "from": "shipping", "to": "billing"}
    assert AuditEvent.objects.filter(action="record.accept", actor=alice).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("label", ["", "   ", "refunds", "Billing"])
def test_a_label_not_in_the_datanet_is_refused_and_nothing_changes(queue, alice, label):
    datanet, (charged, *_) = queue
    with pytest.raises(ValidationError) as refused:
        review_actions.records_accept_relabelled(datanet=datanet, reviewer=alice, record_ids=[charged.pk],
                                                 labels={charged.pk: label})
    assert "Choose a label for this row: one of billing, shipping, account." in refused.value.messages
    charged.refresh_from_db()
    assert (charged.label, charged.status) == ("shipping", RecordStatus.PENDING)
    assert not AuditEvent.objects.filter(action__in=["record.relabel", "record.accept"]).exists()


@pytest.mark.django_db
def test_only_curators_relabel_and_only_rows_still_waiting(queue, alice, charlie):
    datanet, (charged, parcel, _) = queue
    with pytest.raises(PermissionDenied):
        review_actions.record_relabel(datanet=datanet, reviewer=charlie, record_id=charged.pk, label="billing")
    review_actions.records_accept_relabelled(datanet=datanet, reviewer=alice, record_ids=[parcel.pk], labels={})
    with pytest.raises(ValidationError, match="Only rows waiting for review are relabelled; this one is accepted"):
        review_actions.record_relabel(datanet=datanet, reviewer=alice, record_id=parcel.pk, label="billing")
    parcel.refresh_from_db()
    assert parcel.label == "shipping"
    assert review_actions.record_relabel(datanet=datanet, reviewer=alice, record_id=charged.pk, label="shipping") is False


# --- The per-row endpoint (htmx) -----------------------------------------------------------------------

def _decide(client, datanet, record, **data):
    return client.post(f"/datanets/{datanet.slug}/review/rows/{record.pk}/decide/", data, HTTP_HX_REQUEST="true")


@pytest.mark.django_db
def test_the_row_endpoint_returns_the_row_and_the_progress_out_of_band(client, queue, alice):
    datanet, (charged, parcel, _) = queue
    client.force_login(alice)
    response = _decide(client, datanet, charged, decision="accept", **{f"label_{charged.pk}": "billing"})
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith(f'<tr data-record="{charged.pk}"')
    assert "Accepted" in html and 'id="review-progress" hx-swap-oob="true"' in html and "2 waiting" in html
    charged.refresh_from_db()
    assert (charged.status, charged.label) == (RecordStatus.ACCEPTED, "billing")

    # A reject without a reason is refused in the row, which keeps what the curator typed and chose.
    refused = _decide(client, datanet, parcel, decision="reject", **{f"reason_{parcel.pk}": "  "}).content.decode()
    assert "Say why the row is rejected" in refused and 'role="alert"' in refused
    parcel.refresh_from_db()
    assert parcel.status == RecordStatus.PENDING
    rejected = _decide(client, datanet, parcel, decision="reject", **{f"reason_{parcel.pk}": "Not a ticket"})
    assert "Rejected" in rejected.content.decode() and "Not a ticket" in rejected.content.decode()
    parcel.refresh_from_db()
    assert (parcel.status, parcel.reason) == (RecordStatus.REJECTED, "Not a ticket")


@pytest.mark.django_db
def test_the_row_endpoint_says_choose_a_label_and_keeps_the_row_waiting(client, queue, alice, charlie):
    datanet, (charged, *_) = queue
    client.force_login(alice)
    html = _decide(client, datanet, charged, decision="accept", **{f"label_{charged.pk}": ""}).content.decode()
    assert "Choose a label for this row" in html and 'aria-invalid="true"' in html
    assert re.search(r'<option value="" selected>Choose a label</option>', html)
    charged.refresh_from_db()
    assert (charged.status, charged.label) == (RecordStatus.PENDING, "shipping")
    client.force_login(charlie)  # not a curator
    assert _decide(client, datanet, charged, decision="accept").status_code == 403


@pytest.mark.django_db
def test_the_bulk_accept_applies_the_labels_chosen_in_the_pickers(client, queue, alice):
    datanet, (charged, parcel, login_row) = queue
    client.force_login(alice)
    client.post(f"/datanets/{datanet.slug}/review/decide/", {
        "decision": "accept", "record_ids": [charged.pk, parcel.pk], "status": "pending",
        f"label_{charged.pk}": "billing", f"label_{parcel.pk}": "shipping", f"label_{login_row.pk}": "billing"})
    labels = dict(Record.objects.filter(datanet=datanet).values_list("pk", "label"))
    statuses = dict(Record.objects.filter(datanet=datanet).values_list("pk", "status"))
    assert labels == {charged.pk: "billing", parcel.pk: "shipping", login_row.pk: "account"}  # not selected: unchanged
    assert statuses == {charged.pk: "accepted", parcel.pk: "accepted", login_row.pk: "pending"}


# --- In a real browser ---------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_per_row_accept_relabel_reject_and_j_k_without_reloading(live_server, page, queue, alice):
    datanet, (charged, parcel, login_row) = queue
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/review/")
    assert_accessible(page)
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

    # j / k move the current row (focused, outlined) down and up; typing in a field is left alone.
    page.keyboard.press("j")
    expect(page.locator(f"#record-{charged.pk}")).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator(f"#record-{parcel.pk}")).to_be_focused()
    expect(page.locator(f"#record-{parcel.pk}")).to_have_attribute("aria-current", "true")
    page.keyboard.press("k")
    expect(page.locator(f"#record-{charged.pk}")).to_be_focused()
    expect(page.locator("tr.is-current")).to_have_count(1)

    # An empty label picker: "Choose a label", and the row still waits.
    row = page.locator(f"#record-{charged.pk}")
    row.get_by_label(f"Label of row {charged.pk}").select_option("")
    row.get_by_role("button", name=f"Accept row {charged.pk}").click()
    expect(page.locator(f"#record-{charged.pk}").get_by_role("alert")).to_contain_text("Choose a label")
    expect(page.locator(f"#record-{charged.pk}").get_by_test_id("row-status")).to_have_text("In review")
    assert_accessible(page)

    # Relabel to billing, then accept: the row turns Accepted in place and the progress follows.
    row = page.locator(f"#record-{charged.pk}")
    row.get_by_label(f"Label of row {charged.pk}").select_option("billing")
    row.get_by_role("button", name=f"Accept row {charged.pk}").click()
    expect(page.locator(f"#record-{charged.pk}").get_by_test_id("row-status")).to_have_text("Accepted")
    expect(page.locator(f"#record-{charged.pk}")).to_contain_text("billing")
    expect(page.get_by_test_id("progress")).to_contain_text("1 of 3 reviewed · 2 waiting")

    # Reject the next row with a reason, from the keyboard: j, Tab to its controls.
    page.keyboard.press("j")
    expect(page.locator(f"#record-{parcel.pk}")).to_be_focused()
    page.locator(f"#record-{parcel.pk}").get_by_label(f"Reason to reject row {parcel.pk}").fill("Duplicate of a ticket")
    page.locator(f"#record-{parcel.pk}").get_by_role("button", name=f"Reject row {parcel.pk}").press("Enter")
    expect(page.locator(f"#record-{parcel.pk}").get_by_test_id("row-status")).to_have_text("Rejected")
    expect(page.locator(f"#record-{parcel.pk}")).to_contain_text("Duplicate of a ticket")
    expect(page.get_by_test_id("progress")).to_contain_text("2 of 3 reviewed · 1 waiting")
    expect(page.locator(f"#record-{parcel.pk}")).to_have_class(re.compile("is-current"))
    assert page.evaluate("window.__sameDocument") is True
    assert_accessible(page)

    charged.refresh_from_db()
    parcel.refresh_from_db()
    login_row.refresh_from_db()
    assert (charged.status, charged.label) == (RecordStatus.ACCEPTED, "billing")
    assert (parcel.status, parcel.reason) == (RecordStatus.REJECTED, "Duplicate of a ticket")
    assert login_row.status == RecordStatus.PENDING
