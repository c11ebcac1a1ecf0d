"""Issue #22, the contributor's whole journey on a fresh install, in a real browser, from a new account:

1. Priya signs up and finds Alice's public Datanet of support tickets by searching the Datanets page;
2. she uploads a CSV: its good rows go to review, the row with a label the Datanet does not have is refused with
   the reason, and two exact copies are named by the line of her file or, for a row already in the Datanet, by
   its text; every message and the tables number her rows one way, by the line of her file (#13); the
   row-errors CSV carries each refused row's content;
3. she uploads a workbook by mistake: the type is not supported, with what to export instead, and a Failed step
   (#12);
4. she types rows: adds a line, removes one, and the label picker she left empty says "choose a label" with the
   grid kept as typed; once chosen, the rows go to review;
5. "My contributions" lists every upload with its state and its rows' outcome;
6. when Alice (the Datanet's owner) rejects one of her typed rows with a reason, she is told: an e-mail once
   the upload is reviewed, and the notice and the reason on "My contributions";
7. she links a wallet: a wrong address keeps the labelled form and what she typed, the field explains the
   format; then she signs;
8. answers that used her rows earned her OPEN: the rewards page shows every figure with its unit, under its label,
   and pages its list of earnings.

axe-core checks every page she visits (tests/browser_support.assert_accessible)."""

import csv
import io
import re
import zipfile

import pytest
from browser_support import assert_accessible, figures_off_their_labels, personal_sign, sign_up
from django.contrib.auth import get_user_model
from eth_account import Account
from playwright.sync_api import expect

from datanets import services as datanet_services
from datanets.models import Contribution, ContributionState, Record
from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from rewards import services as rewards_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPEN = 10**18
EMAIL = "priya.contributor@example.org"
PASSWORD = "a-long-and-unusual-passphrase-22"
LABELS = ["billing", "shipping", "account"]
ALICES = ["The courier left my parcel with a neighbour I do not know", "Why was I billed twice for one order",
          "I cannot change the email address on my account"]
UPLOAD = ("text,label\n"
          "I was charged twice for my March subscription,billing\n"        # line 2
          "Tracking has not moved since Monday,shipping\n"                 # line 3
          "The password reset link never arrives,account\n"                # line 4
          "I want my money back for the toaster,refunds\n"                 # line 5: not one of the labels
          "I was charged twice for my March subscription,billing\n"        # line 6: line 2 again
          f"{ALICES[0]},shipping\n")                                        # line 7: Alice's accepted row
REFUSED = {5: "Line 5: the label 'refunds' is not one of: billing, shipping, account",
           6: "Line 6: exact duplicate of line 2 of this upload",
           7: f"Line 7: exact duplicate of a row already in this Datanet, “{ALICES[0]}”"}
REASON = "Refunds are handled by the payments team, not support"
ANSWERS = 26  # one more than a page of earnings


def workbook() -> bytes:
    """An .xlsx as Excel writes one: a zip of XML parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats'
                                                '.org/package/2006/content-types"/>')
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buffer.getvalue()


@pytest.fixture
def fresh_install(alice, charlie, django_capture_on_commit_callbacks):
    """Before Priya comes: Alice's public Datanet of support tickets with three accepted rows, and her model."""
    datanet = datanet_services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                              label_set=LABELS, summary="Customer tickets by intent")
    with django_capture_on_commit_callbacks(execute=True):
        seeded = datanet_services.contribution_create_from_rows(
            datanet=datanet, contributor=alice, rows=[{"text": t, "label": label}
                                                     for t, label in zip(ALICES, ["shipping", "billing", "account"],
                                                                         strict=True)])
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                    record_ids=seeded.records.values_list("pk", flat=True))
    base = BaseModel.objects.create(name="MiniLM", slug="minilm-journey", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=alice, name="intents", base_model=base, task="text-classification")
    model = ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Ticket intents", slug="ticket-intents", version_hash="c" * 64,
        task="text-classification", label_names=LABELS, storage_prefix="models/ticket-intents", manifest={},
        price_per_inference=OPEN // 10)
    return {"alice": alice, "datanet": datanet, "model": model, "customer": charlie}


def upload(page, path):
    page.get_by_label("File").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()


def test_a_new_contributor_uploads_types_rows_hears_of_rejections_and_reads_her_rewards(
        live_server, page, fresh_install, tmp_path, mailoutbox, screenshot):
    alice, datanet = fresh_install["alice"], fresh_install["datanet"]

    # 1. Sign up; find the public Datanet by searching.
    sign_up(page, live_server, EMAIL, PASSWORD)
    priya = get_user_model().objects.get(email=EMAIL)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datanets").click()
    page.get_by_label("Search").fill("tickets")
    card = page.locator("#results article", has_text="Support tickets")
    expect(card).to_contain_text("3 accepted rows")
    expect(page.locator("#results article")).to_have_count(1)
    assert_accessible(page)
    card.get_by_role("link", name="Support tickets").click()
    expect(page.get_by_role("heading", name="Support tickets", level=1)).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="Contribute rows").click()
    expect(page.get_by_role("heading", name="Contribute")).to_be_visible()
    assert_accessible(page)

    # 2. A CSV with good rows, a label the Datanet lacks, a copy of her own line and a copy of Alice's row.
    tickets = tmp_path / "tickets.csv"
    tickets.write_text(UPLOAD)
    upload(page, tickets)
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=60_000)
    expect(page.get_by_test_id("rows-accepted")).to_have_text("3")
    expect(page.get_by_test_id("rows-rejected")).to_have_text("1")
    expect(page.get_by_test_id("rows-duplicate")).to_have_text("2")
    refused = page.locator("#row-errors tbody tr")
    expect(refused).to_have_count(3)
    for i, (line, message) in enumerate(REFUSED.items()):
        expect(refused.nth(i).locator("td").first).to_have_text(f"Line {line}")
        expect(refused.nth(i).locator("td").nth(2)).to_have_text(message)
    expect(refused.nth(0).locator(".row-content")).to_contain_text("I want my money back for the toaster")
    kept = page.locator("#rows tbody tr")
    expect(kept).to_have_count(3)
    assert [row.locator("td").first.inner_text() for row in kept.all()] == ["Line 2", "Line 3", "Line 4"]
    expect(page.locator("#rows tr[data-status='pending']")).to_have_count(3)
    assert not re.search(r"\brow \d", page.locator("main").inner_text())  # never an id or a table position
    assert_accessible(page)
    screenshot("journey-contributor-upload")
    errors_csv = page.request.get(live_server.url + page.get_by_role("link", name="Download as CSV").get_attribute("href"))
    assert errors_csv.ok
    table = list(csv.DictReader(io.StringIO(errors_csv.text())))
    assert [(r["line"], r["message"], r["text"], r["label"]) for r in table] == [
        ("5", REFUSED[5], "I want my money back for the toaster", "refunds"),
        ("6", REFUSED[6], "I was charged twice for my March subscription", "billing"),
        ("7", REFUSED[7], ALICES[0], "shipping")]

    # 3. A workbook by mistake: its type is named, with what to export, and the steps end in Failed.
    book = tmp_path / "tickets.xlsx"
    book.write_bytes(workbook())
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/contribute/")
    upload(page, book)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Excel workbooks (.xlsx) are not supported")
    expect(alert).to_contain_text("Save As › CSV UTF-8")
    expect(page.locator('li[data-step="failed"][data-status="failed"]')).to_have_text("✗ Failed")
    expect(page.get_by_test_id("state")).to_have_text("Failed")
    assert "header" not in alert.inner_text() and "UTF-8 text" not in alert.inner_text()
    assert_accessible(page)

    # 4. Typed rows: three lines to start, one added (and focused), a stray one removed, the rest renumbered.
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/contribute/")
    lines = page.locator("#typed-rows tbody tr")
    expect(lines).to_have_count(3)
    page.get_by_role("button", name="Add a row").click()
    expect(lines).to_have_count(4)
    expect(page.get_by_label("Row 4 text")).to_be_focused()
    page.get_by_label("Row 1 text").fill("My parcel was left at the wrong door")
    page.get_by_label("Row 1 label").select_option("shipping")
    page.get_by_label("Row 2 text").fill("asdf test")
    page.get_by_label("Row 3 text").fill("Please refund the double charge on my card")
    page.get_by_role("button", name="Remove row 2").click()
    expect(lines).to_have_count(3)
    expect(page.get_by_label("Row 2 text")).to_have_value("Please refund the double charge on my card")
    expect(page.get_by_label("Row 2 text")).to_be_focused()
    expect(lines.nth(1).locator("th")).to_have_text("2")
    assert_accessible(page)
    page.get_by_role("button", name="Submit rows").click()
    expect(page.get_by_test_id("typed-rows-error")).to_have_text(
        "Row 2: choose a label (one of billing, shipping, account).")
    picker = page.get_by_label("Row 2 label")
    expect(picker).to_have_attribute("aria-invalid", "true")
    expect(picker.locator("option:checked")).to_have_text("Choose a label")
    expect(page.get_by_label("Row 1 text")).to_have_value("My parcel was left at the wrong door")
    expect(page.get_by_label("Row 1 label")).to_have_value("shipping")
    expect(page.get_by_label("Row 2 text")).to_have_value("Please refund the double charge on my card")
    assert Contribution.objects.filter(contributor=priya).count() == 2  # nothing stored from the refused grid
    assert_accessible(page)
    picker.select_option("billing")
    page.get_by_role("button", name="Submit rows").click()
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=60_000)
    expect(page.get_by_test_id("rows-accepted")).to_have_text("2")
    expect(page.locator("#rows tbody tr").first).to_contain_text("My parcel was left at the wrong door")
    typed = Contribution.objects.filter(contributor=priya).latest("pk")

    # 5. "My contributions": every upload, newest first, with its state and its rows' outcome.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My contributions").click()
    uploads = page.locator("#uploads tbody tr")
    expect(uploads).to_have_count(3)
    expected = [("In review", "0", "2", "0", "0", "0"), ("Failed", "0", "0", "0", "0", "0"),
                ("In review", "0", "3", "0", "1", "2")]
    for row, (state, accepted, pending, rejected, invalid, duplicate) in zip(uploads.all(), expected, strict=True):
        expect(row.get_by_test_id("upload-state")).to_have_text(state)
        for testid, count in (("upload-accepted", accepted), ("upload-pending", pending),
                              ("upload-rejected", rejected), ("upload-invalid", invalid),
                              ("upload-duplicate", duplicate)):
            expect(row.get_by_test_id(testid)).to_have_text(count)
    expect(uploads.nth(1)).to_contain_text("tickets.xlsx")
    expect(page.get_by_test_id("rejected-notice")).to_have_count(0)
    assert_accessible(page)

    # 6. Alice curates her typed rows: one accepted, one rejected with a reason. She gets an e-mail, the notice and
    # the reason.
    rows = {r.fields["text"]: r for r in Record.objects.filter(contribution=typed)}
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                    record_ids=[rows["My parcel was left at the wrong door"].pk])
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="reject", reason=REASON,
                                    record_ids=[rows["Please refund the double charge on my card"].pk])
    typed.refresh_from_db()
    assert typed.state == ContributionState.DONE
    (mail,) = [m for m in mailoutbox if EMAIL in m.to and "reviewed" in m.subject]
    assert mail.subject == "Your contribution to Support tickets has been reviewed", [m.subject for m in mailoutbox]
    assert "1 row accepted, 1 rejected" in mail.body and typed.get_absolute_url() in mail.body
    page.reload()
    expect(page.get_by_test_id("rejected-notice")).to_contain_text(
        "Curators rejected 1 of your rows (1 in the last 7 days)")
    expect(uploads.first.get_by_test_id("upload-state")).to_have_text("Done")
    expect(uploads.first.get_by_test_id("upload-rejected")).to_have_text("1")
    rejected = page.locator("#rejected tbody tr")
    expect(rejected).to_have_count(1)
    expect(rejected.first).to_contain_text("Please refund the double charge on my card")
    expect(rejected.first.get_by_test_id("rejection-reason")).to_have_text(REASON)
    assert_accessible(page)
    screenshot("journey-contributor-mine")
    page.get_by_test_id("rejected-notice").get_by_role("link", name="See each reason").click()
    expect(page).to_have_url(re.compile(r"#rejected-rows$"))
    rejected.first.get_by_role("link", name=re.compile(r"^#\d+ ")).click()
    expect(page.locator("#rows tr[data-status='rejected']")).to_contain_text(REASON)
    assert_accessible(page)

    # 7. Her wallet: the field explains the format; a mistyped address keeps the labelled form and what she typed.
    wallet = Account.from_key("0x" + "7c" * 32)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rewards").click()
    page.get_by_role("link", name="Link a wallet").click()
    expect(page.get_by_test_id("address-format")).to_contain_text("0x followed by 40 hexadecimal characters")
    assert_accessible(page)
    first_letter = next(i for i, c in enumerate(wallet.address) if i > 1 and c.isalpha())
    mistyped = (wallet.address[:first_letter] + wallet.address[first_letter].swapcase()  # copied with one letter's
                + wallet.address[first_letter + 1:])                                     # case changed: no checksum
    page.get_by_label("Wallet address").fill(mistyped)
    page.get_by_role("button", name="Prepare the message").click()
    expect(page.get_by_role("alert")).to_contain_text("bad EIP-55 checksum")
    expect(page.get_by_label("Wallet address")).to_have_value(mistyped)
    expect(page.get_by_label("Wallet address")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("address-format")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Wallet address").fill(wallet.address)
    page.get_by_role("button", name="Prepare the message").click()
    message = page.get_by_label("Message").input_value()
    page.get_by_label("Signature").fill(personal_sign(wallet, message))
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_test_id("current-wallet")).to_have_text(wallet.address)
    assert_accessible(page)

    # 8. Charlie's answers from Alice's model used Priya's rows: she earned OPEN, shown with units and paged.
    customer, model = fresh_install["customer"], fresh_install["model"]
    rewards_services.credit_grant(actor=None, user=customer, amount=10 * OPEN, reason="Bought credit")
    for i in range(ANSWERS):
        rewards_services.fee_settle(inference_id=f"charlie-{i:02d}", payer=customer, model_owner=alice,
                                    fee=model.price_per_inference, contributor_shares={priya.pk: 10**6},
                                    model_version_hash=model.version_hash, receipt_id=f"rc-charlie-{i:02d}")
    page.goto(f"{live_server.url}/rewards/")
    for testid in ("earned", "accruing", "pending", "paid", "credit"):
        expect(page.get_by_test_id(testid).locator("xpath=..")).to_contain_text(re.compile(r"^[\d.,]+ OPEN"))
    assert not figures_off_their_labels(page)  # each figure starts under its label
    earnings = page.locator("#earnings tbody tr")
    expect(earnings).to_have_count(25)
    for cell in page.locator("#earnings tbody td:nth-child(5)").all_inner_texts():
        assert re.fullmatch(r"[\d.,]+ OPEN", cell), cell
    expect(earnings.first.get_by_role("link", name="Ticket intents")).to_have_attribute("href",
                                                                                        "/models/ticket-intents/")
    assert_accessible(page)
    screenshot("journey-contributor-rewards")
    page.get_by_role("navigation", name="Earnings pages").get_by_role("link", name="Older").click()
    expect(earnings).to_have_count(ANSWERS - 25)
    expect(earnings.first).to_contain_text("charlie-00")
    expect(page.get_by_role("navigation", name="Earnings pages")).to_contain_text("Page 2 of 2")
    assert_accessible(page)
