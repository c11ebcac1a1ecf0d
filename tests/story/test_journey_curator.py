"""Issue #22, the curator's whole journey on a fresh install, in a real browser, from a new account:

1. Bea signs up; Alice's Datanet of support tickets is not hers to review yet (no queue in its menu, the queue's
   address answers the site's styled 403 page);
2. Alice, its owner, adds her as a curator from the Datanet's settings (an address nobody signed up with is
   refused, with what to do);
3. Bea reviews Dora's new tickets in the queue: j and k move between rows, a mislabelled row is relabelled and
   accepted with its own button, a junk row is rejected with its reason from the keyboard, the others accepted
   one by one, the page never reloading;
4. she finds a row of v1 that holds a customer's phone number (accepted rows, searched) and rejects it;
5. she publishes v2 (the form counts the rows and the one contributor it freezes, in correct plurals);
6. the comparison of v1 and v2 lists the rows added and the row removed (#11), and keeps her reason private.

axe-core checks every page she and Alice visit (tests/browser_support.assert_accessible)."""

import re

import pytest
from browser_support import assert_accessible, login, logout, misaligned_controls, sign_up
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from accounts.models import AuditEvent
from datanets import services as datanet_services
from datanets.models import Membership, Record, RecordStatus, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "bea.curator@example.org"
PASSWORD = "a-long-and-unusual-passphrase-22"
LABELS = ["billing", "shipping", "account"]
PHONE = "Call me on 0612345678 about my refund"
V1 = [(PHONE, "billing"), ("The courier left my parcel with a neighbour", "shipping"),
      ("I cannot change the email address on my account", "account"), ("Why was I billed twice", "billing")]
CHARGED, JUNK = "I was charged twice for my March subscription", "asdfgh test test"
PARCEL, RESET = "Where is my parcel, tracking is stuck", "The password reset link never arrives"
NEW = [(CHARGED, "shipping"), (JUNK, "billing"), (PARCEL, "shipping"), (RESET, "account")]  # the first mislabelled
JUNK_REASON = "Not a support ticket"
PHONE_REASON = "Personal data: a customer's phone number"


@pytest.fixture
def fresh_install(alice, dora, django_capture_on_commit_callbacks):
    """Alice's public ticket Datanet: v1 holds four of Dora's rows; four more of hers wait for review."""
    datanet = datanet_services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                              label_set=LABELS, summary="Customer tickets by intent")

    def contribute(rows):
        with django_capture_on_commit_callbacks(execute=True):
            return datanet_services.contribution_create_from_rows(
                datanet=datanet, contributor=dora, rows=[{"text": t, "label": label} for t, label in rows])

    first = contribute(V1)
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                    record_ids=first.records.values_list("pk", flat=True))
    datanet_services.version_publish(datanet=datanet, actor=alice, notes="Dora's first tickets")
    contribute(NEW)
    rows = {r.fields["text"]: r for r in Record.objects.filter(datanet=datanet)}
    return {"alice": alice, "datanet": datanet, "rows": rows}


def sign_in(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    expect(page.locator(".account-menu summary")).to_be_visible()


def test_a_new_curator_reviews_the_queue_removes_a_row_and_publishes_a_version(live_server, page, fresh_install,
                                                                                screenshot):
    alice, datanet, rows = fresh_install["alice"], fresh_install["datanet"], fresh_install["rows"]
    charged, junk, parcel, reset, phone = (rows[t] for t in (CHARGED, JUNK, PARCEL, RESET, PHONE))

    # 1. Bea signs up: the Datanet is public, its review queue is not hers.
    sign_up(page, live_server, EMAIL, PASSWORD, check_accessible=True)
    bea = get_user_model().objects.get(email=EMAIL)
    page.goto(f"{live_server.url}{datanet.get_absolute_url()}")
    subnav = page.get_by_role("navigation", name="Support tickets")
    expect(subnav.get_by_role("link", name="Versions")).to_be_visible()
    expect(subnav.get_by_role("link", name="Review queue")).to_have_count(0)
    response = page.goto(f"{live_server.url}/datanets/{datanet.slug}/review/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed", level=1)).to_be_visible()
    expect(page.get_by_test_id("denied-reason")).to_have_text("Only this Datanet's curators review rows.")
    assert_accessible(page)
    logout(page)

    # 2. Alice adds her as a curator; an address nobody signed up with is refused with what to do.
    login(page, live_server, alice)
    page.goto(f"{live_server.url}{datanet.get_absolute_url()}")
    page.get_by_role("navigation", name="Support tickets").get_by_role("link", name="Settings").click()
    members = page.locator("form", has=page.get_by_role("button", name="Add member"))
    members.get_by_label("Email").fill("nobody.here@example.org")
    members.get_by_label("Role").select_option("curator")
    members.get_by_role("button", name="Add member").click()
    expect(page.locator("#messages")).to_contain_text("No account uses that email address. Ask them to sign up first.")
    assert not Membership.objects.filter(datanet=datanet, role=Role.CURATOR).exists()
    assert_accessible(page)
    members.get_by_label("Email").fill(EMAIL)
    members.get_by_label("Role").select_option("curator")
    members.get_by_role("button", name="Add member").click()
    expect(page.locator("#messages")).to_contain_text(f"{bea.public_name} is now a curator.")
    expect(page.locator("tr", has_text=EMAIL)).to_contain_text("Curator")
    assert_accessible(page)
    logout(page)

    # 3. Bea reviews the queue: j/k, relabel then accept, reject with a reason, accept, row by row in place.
    sign_in(page, live_server)
    page.goto(f"{live_server.url}{datanet.get_absolute_url()}")
    page.get_by_role("navigation", name="Support tickets").get_by_role("link", name="Review queue").click()
    progress = page.get_by_test_id("progress")
    expect(progress).to_contain_text("4 of 8 reviewed · 4 waiting")
    expect(page.locator("#queue tbody tr[data-record]")).to_have_count(4)
    for controls in ("form.filters select, form.filters input, form.filters button",  # side by side, in line
                     "#queue .toolbar button, #queue .toolbar input[type=text]",
                     f"#record-{charged.pk} button, #record-{charged.pk} input[type=text]"):
        assert not misaligned_controls(page.locator(controls)), misaligned_controls(page.locator(controls))
    assert_accessible(page)
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    order = [int(r) for r in page.locator("#queue tbody tr[data-record]").evaluate_all(
        "rows => rows.map(r => r.dataset.record)")]
    assert order == [charged.pk, junk.pk, parcel.pk, reset.pk]
    page.keyboard.press("j")
    expect(page.locator(f"#record-{charged.pk}")).to_be_focused()
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page.locator(f"#record-{parcel.pk}")).to_be_focused()
    page.keyboard.press("k")
    page.keyboard.press("k")
    expect(page.locator(f"#record-{charged.pk}")).to_be_focused()
    expect(page.locator(f"#record-{charged.pk}")).to_have_attribute("aria-current", "true")

    row = page.locator(f"#record-{charged.pk}")
    expect(row.get_by_label(f"Label of row {charged.pk}")).to_have_value("shipping")
    row.get_by_label(f"Label of row {charged.pk}").select_option("billing")
    row.get_by_role("button", name=f"Accept row {charged.pk}").click()
    expect(row.get_by_test_id("row-status")).to_have_text("Accepted")
    expect(row).to_contain_text("billing")
    expect(progress).to_contain_text("5 of 8 reviewed · 3 waiting")

    page.keyboard.press("j")
    expect(page.locator(f"#record-{junk.pk}")).to_be_focused()
    for control in (page.get_by_label(f"Select row {junk.pk}"), page.get_by_label(f"Label of row {junk.pk}"),
                    page.get_by_role("button", name=f"Accept row {junk.pk}"),
                    page.get_by_label(f"Reason to reject row {junk.pk}")):  # Tab walks the row's controls in order
        page.keyboard.press("Tab")
        expect(control).to_be_focused()
    page.keyboard.type(JUNK_REASON)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=f"Reject row {junk.pk}")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(f"#record-{junk.pk}").get_by_test_id("row-status")).to_have_text("Rejected")
    expect(page.locator(f"#record-{junk.pk}")).to_contain_text(JUNK_REASON)
    for record in (parcel, reset):
        page.get_by_role("button", name=f"Accept row {record.pk}").click()
        expect(page.locator(f"#record-{record.pk}").get_by_test_id("row-status")).to_have_text("Accepted")
    expect(progress).to_contain_text("8 of 8 reviewed · 0 waiting · 7 accepted · 1 rejected")
    assert page.evaluate("window.__sameDocument") is True
    assert_accessible(page)
    screenshot("journey-curator-queue")

    # 4. The phone number in v1: accepted rows, searched, rejected with the reason.
    page.get_by_label("Status").select_option(label="Accepted")
    expect(page.locator("#queue tbody tr[data-record]")).to_have_count(7)
    page.get_by_label("Search").fill("0612345678")
    page.get_by_label("Search").press("Enter")  # the field's change and the form's submit: the last one is drawn
    expect(page.locator("#queue tbody tr[data-record]")).to_have_count(1)
    expect(page.locator(".htmx-request")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"status=accepted.*q=0612345678"))
    found = page.locator(f"#record-{phone.pk}")
    expect(found).to_contain_text(PHONE)
    found.get_by_label(f"Reason to reject row {phone.pk}").fill(PHONE_REASON)
    found.get_by_role("button", name=f"Reject row {phone.pk}").click()
    expect(found.get_by_test_id("row-status")).to_have_text("Rejected")
    assert_accessible(page)

    # 5. Publish v2: six rows of one contributor, said so.
    page.get_by_role("navigation", name="Support tickets").get_by_role("link", name="Versions").click()
    expect(page.get_by_test_id("publish-summary")).to_have_text("6 accepted rows from 1 contributor will be frozen.")
    assert_accessible(page)
    page.get_by_label("Notes").fill("Relabelled a charge, removed a phone number")
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("heading", name="v2")).to_be_visible()
    expect(page.locator("#messages")).to_contain_text("Published v2 (6 rows).")
    assert_accessible(page)

    # 6. Compare v1 and v2: three rows added (the relabelled one with its new label), the phone number removed.
    page.get_by_role("navigation", name="Support tickets").get_by_role("link", name="Versions").click()
    page.get_by_role("link", name="Compare versions").click()
    expect(page.get_by_test_id("diff-summary")).to_have_text("3 rows added, 1 removed from v1 to v2.")
    added = page.locator("#added-rows tbody tr")
    expect(added).to_have_count(3)
    expect(page.locator("#added-rows")).not_to_contain_text(JUNK)
    expect(added.filter(has_text=CHARGED).locator("td").nth(2)).to_have_text("billing")
    for text in (PARCEL, RESET):
        expect(added.filter(has_text=text)).to_have_count(1)
    removed = page.locator("#removed-rows tbody tr")
    expect(removed).to_have_count(1)
    expect(removed.first).to_contain_text(PHONE)
    expect(removed.first.locator("td").last).to_have_text("Rejected")
    expect(page.get_by_test_id("removed-count")).to_have_text("1")
    assert PHONE_REASON not in page.locator("main").inner_text()  # the reason is for Dora, not the public
    assert_accessible(page)
    screenshot("journey-curator-diff")

    statuses = dict(Record.objects.filter(datanet=datanet).values_list("pk", "status"))
    assert statuses[junk.pk] == statuses[phone.pk] == RecordStatus.REJECTED
    assert Record.objects.get(pk=charged.pk).label == "billing"
    relabel = AuditEvent.objects.get(action="record.relabel")
    assert relabel.actor == bea and relabel.details == {"record": charged.pk, "from": "shipping", "to": "billing"}
    assert AuditEvent.objects.filter(action="datanet.version_publish", actor=bea).count() == 1
