"""In a real browser: a contributor uploads two PDFs at once (one of them locked) and sees the locked one
reported while the other's passages wait for review; the owner accepts them, publishes, and searches the new
version from its page, finding the planted fact first with its document, page and contributor."""

import pytest
from browser_support import assert_accessible, login, logout
from documents_support import PDF_PAGES, text_pdf
from playwright.sync_api import expect

from datanets import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_upload_documents_publish_and_search_from_the_version_page(live_server, page, alice, dora, tmp_path, screenshot):
    datanet = services.datanet_create(owner=alice, name="Coastal handbook", task_type="documents",
                                      summary="Manuals of the coastal energy sites")
    handbook, locked = tmp_path / "coastal-energy.pdf", tmp_path / "locked.pdf"
    handbook.write_bytes(text_pdf(PDF_PAGES))
    locked.write_bytes(text_pdf([["Nobody reads this."]], password="hunter2"))

    # 1. A contributor uploads both documents in one go.
    login(page, live_server, dora)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/contribute/")
    assert_accessible(page)
    page.get_by_label("Documents").set_input_files([str(handbook), str(locked)])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=30_000)
    expect(page.get_by_test_id("rows-accepted")).to_have_text("3")
    expect(page.get_by_test_id("rows-rejected")).to_have_text("1")
    expect(page.locator("#row-errors")).to_contain_text("“locked.pdf”: This PDF is protected by a password")
    expect(page.locator("#rows")).to_contain_text("“coastal-energy.pdf”, p. 2")
    assert_accessible(page)
    screenshot("documents-contribution")
    logout(page)

    # 2. The owner accepts the passages and publishes v1; its search index is built on commit.
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/review/")
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Accept selected").click()
    expect(page.get_by_test_id("progress")).to_contain_text("0 waiting")
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/versions/")
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("heading", name="v1")).to_be_visible(timeout=60_000)
    expect(page.locator("#documents")).to_contain_text("coastal-energy.pdf")

    # 3. Searching from the version page answers in place.
    page.get_by_label("Question or words").fill("How many homes does the Harrowgate turbine power?")
    page.get_by_role("button", name="Search").click()
    first = page.get_by_test_id("search-result").first
    expect(first).to_contain_text("coastal-energy.pdf · p. 2 · contributed by Dora", timeout=30_000)
    expect(first).to_contain_text("delivers 47 megawatts")
    assert "/search/" not in page.url  # htmx swapped the results into the version page
    assert_accessible(page)
    screenshot("documents-search")
