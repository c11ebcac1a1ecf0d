"""In a real browser: a contributor uploads a CSV with bad rows and a duplicate and sees the per-row
errors; a curator accepts in the queue; the owner publishes; the diff shows the new rows."""


import pytest
from browser_support import assert_accessible, login, logout
from playwright.sync_api import expect

from datanets import services
from datanets.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


UPLOAD = (
    "text,label\n"
    "My invoice shows the wrong amount,billing\n"
    "The courier left my parcel at the wrong house,shipping\n"
    ",billing\n"
    "Please reset my password,refunds\n"
    "My invoice shows the wrong amount,billing\n"
)


def test_upload_review_publish_diff(live_server, page, alice, bob, charlie, tmp_path, screenshot,
                                    django_capture_on_commit_callbacks):
    datanet = services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                      label_set=["billing", "shipping", "account"], summary="Tickets by intent")
    services.membership_set(datanet=datanet, actor=alice, user=bob, role=Role.CURATOR)
    with django_capture_on_commit_callbacks(execute=True):
        seed = services.contribution_create_from_rows(
            datanet=datanet, contributor=alice, rows=[{"text": "I cannot sign in to my account", "label": "account"}]
        )
    services.records_review(datanet=datanet, reviewer=alice, record_ids=seed.records.values_list("pk", flat=True), decision="accept")
    services.version_publish(datanet=datanet, actor=alice, notes="seed")

    # 1. A contributor uploads a CSV with two bad rows and a duplicate.
    login(page, live_server, charlie)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/contribute/")
    assert_accessible(page)
    upload = tmp_path / "tickets.csv"
    upload.write_text(UPLOAD)
    page.get_by_label("File").set_input_files(str(upload))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=30_000)
    expect(page.get_by_test_id("rows-accepted")).to_have_text("2")
    expect(page.get_by_test_id("rows-rejected")).to_have_text("2")
    expect(page.get_by_test_id("rows-duplicate")).to_have_text("1")
    errors = page.locator("#row-errors")
    expect(errors).to_contain_text("empty")
    expect(errors).to_contain_text("refunds")
    expect(errors.locator("tr", has_text="duplicate")).to_contain_text("6")  # the line number
    assert_accessible(page)
    screenshot("contribution-errors")
    logout(page)

    # 2. The curator accepts the new rows from the queue with the keyboard-friendly bulk action.
    login(page, live_server, bob)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/review/")
    expect(page.get_by_test_id("progress")).to_contain_text("2 waiting")
    assert_accessible(page)
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Accept selected").click()
    expect(page.get_by_test_id("progress")).to_contain_text("0 waiting")
    assert_accessible(page)
    screenshot("review-queue")
    logout(page)

    # 3. The owner publishes v2 and the diff shows exactly the two new rows.
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/versions/")
    assert_accessible(page)
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("heading", name="v2")).to_be_visible()
    page.get_by_role("button", name="Re-verify against its files").click()
    expect(page.locator("#verify")).to_contain_text("Verified")
    assert_accessible(page)
    page.get_by_role("link", name="What changed since v1").click()
    expect(page.get_by_test_id("diff-summary")).to_contain_text("2 rows added, 0 removed")
    added = page.locator("#added-rows")
    expect(added).to_contain_text("My invoice shows the wrong amount")
    expect(added).to_contain_text("The courier left my parcel")
    expect(page.get_by_text("Charlie: +2")).to_be_visible()
    assert_accessible(page)
    screenshot("version-diff")
