"""Issue #19, the documents-to-cited-answer journey in a real browser, from a new account:

1. Rosa signs up and creates a Documents Datanet; she uploads a Word document of her own (built here with
   python-docx), in a second browser Charlie (a stranger: the Datanet is open to anyone signed in) uploads a
   Markdown file whose "Beacon" section holds the planted fact;
2. Rosa accepts every passage in the review queue and publishes v1; its search index is built on commit (tasks run
   eagerly in the tests) and the version page offers the search;
3. she deploys a retrieval app over v1 from /retrieval-apps/new/ (extractive: no answering model);
4. in the playground she asks the app; the answer quotes the planted fact with [1], the footnote cites Charlie's
   Markdown file at its section, and the receipt page it links names Charlie as the cited passage's contributor,
   with his whole share of the contributors' pool.

axe-core checks every page visited (tests/browser_support.assert_accessible)."""

import re

import pytest
from browser_support import assert_accessible, login, sign_up
from django.contrib.auth import get_user_model
from docx import Document
from playwright.sync_api import expect

from retrieval.models import RetrievalReceipt

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "rosa.harbour@example.org"
PASSWORD = "a-long-and-unusual-passphrase-19"
DATANET = "Harbour handbook"
PLANTED_FACT = "The Kestrel Point lighthouse lamp is visible for 23 nautical miles on a clear night."
NOTES_MD = f"""# Keeper's notes

## Foghorn

The foghorn sounds two blasts every thirty seconds whenever visibility falls below one mile.
It is tested every Monday at noon, and the test is written in the station log.

## Beacon

{PLANTED_FACT} The lens turns once every ten seconds and was last cleaned in March.

## Stores

Spare bulbs, fuses and paraffin are kept in the oil store beside the boat ramp.
"""
QUESTION = "How far away can the Kestrel Point lighthouse lamp be seen?"


def harbour_docx(path):
    """Rosa's own document: about the harbour, not the lighthouse (a passage the search has to rank below)."""
    document = Document()
    document.add_heading("Harbour office", level=1)
    document.add_heading("Opening hours", level=2)
    document.add_paragraph("The harbour office opens at seven in the morning and closes at six in the evening.")
    document.add_heading("Moorings", level=2)
    document.add_paragraph("Visiting yachts moor on the east pontoon and pay their fees at the office.")
    document.save(path)


def upload_documents(page, live_server, slug, *paths):
    page.goto(f"{live_server.url}/datanets/{slug}/contribute/")
    assert_accessible(page)
    page.get_by_label("Documents").set_input_files([str(p) for p in paths])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=60_000)
    expect(page.get_by_test_id("rows-rejected")).to_have_text("0")
    assert_accessible(page)


def test_a_new_owner_publishes_documents_deploys_a_retrieval_app_and_opens_a_cited_answer(
        live_server, page, browser, charlie, settings, tmp_path, screenshot):
    settings.RETRIEVAL_CACHE_DIR = tmp_path / "retrieval-cache"  # index ids repeat between tests

    # 1. Rosa signs up and creates a Documents Datanet, then uploads her Word document.
    sign_up(page, live_server, EMAIL, PASSWORD, check_accessible=True)
    rosa = get_user_model().objects.get(email=EMAIL)
    page.goto(f"{live_server.url}/datanets/new/")
    assert_accessible(page)
    page.get_by_label("Name").fill(DATANET)
    page.get_by_label("Task type").select_option("documents")
    page.get_by_label("Summary").fill("Notes of the harbour office and the lighthouse keepers.")
    page.get_by_role("button", name="Create Datanet").click()
    expect(page.get_by_role("heading", name=DATANET)).to_be_visible()
    assert_accessible(page)
    slug = page.url.rstrip("/").rsplit("/", 1)[-1]
    harbour = tmp_path / "harbour-office.docx"
    harbour_docx(harbour)
    upload_documents(page, live_server, slug, harbour)

    # Charlie, in his own browser, contributes the keeper's notes with the planted fact.
    notes = tmp_path / "keepers-notes.md"
    notes.write_text(NOTES_MD, encoding="utf-8")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    try:
        other = context.new_page()
        login(other, live_server, charlie)
        upload_documents(other, live_server, slug, notes)
        expect(other.locator("#rows")).to_contain_text("“keepers-notes.md”, Keeper's notes › Beacon")
    finally:
        context.close()

    # 2. Rosa accepts every passage and publishes v1; the search index is built when the version commits.
    page.goto(f"{live_server.url}/datanets/{slug}/review/")
    assert_accessible(page)
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Accept selected").click()
    expect(page.get_by_test_id("progress")).to_contain_text("0 waiting")
    page.goto(f"{live_server.url}/datanets/{slug}/versions/")
    assert_accessible(page)
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("heading", name="v1")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Search")).to_be_visible(timeout=60_000)  # the index is ready
    passages = int(re.search(r"(\d+) passages? indexed", page.locator("#search-panel").inner_text()).group(1))
    assert passages >= 5  # three sections of the notes and two of the Word document, at least
    assert_accessible(page)

    # 3. She deploys a retrieval app over v1 (extractive: the best passage's most relevant sentence, quoted).
    page.goto(f"{live_server.url}/retrieval-apps/new/")
    assert_accessible(page)
    page.get_by_label("Name:", exact=True).fill("Harbour answers")
    page.get_by_label(f"{DATANET} v1 · {passages} passages indexed").check()
    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_role("heading", name="Harbour answers")).to_be_visible()
    app_slug = page.get_by_test_id("app-slug").inner_text()
    assert_accessible(page)

    # 4. She asks it in the playground: the answer quotes the planted fact and cites Charlie's notes.
    page.goto(f"{live_server.url}/playground/")
    page.get_by_label("Model").select_option(app_slug)
    page.get_by_label("Message").fill(QUESTION)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text(f"“{PLANTED_FACT}” [1]", timeout=60_000)
    citation = page.get_by_test_id("citations").locator("li")
    expect(citation).to_have_count(1)
    expect(citation).to_contain_text(f"[1] “keepers-notes.md”, Keeper's notes › Beacon · {DATANET} v1 · Charlie")
    expect(page.get_by_test_id("receipt-link")).to_have_attribute("href", re.compile(r"/retrieval-apps/receipts/"))
    assert_accessible(page)
    screenshot("journey-retrieval-playground")

    # The receipt page: the question, the quoted answer, the cited passage with its contributor, his share.
    page.get_by_test_id("receipt-link").click()
    expect(page.get_by_role("heading", name="Retrieval receipt")).to_be_visible()
    expect(page.get_by_test_id("input")).to_have_text(QUESTION)
    cited = page.locator("#citations li")
    expect(cited).to_have_count(1)
    expect(cited).to_contain_text("“keepers-notes.md”, Keeper's notes › Beacon")
    expect(cited).to_contain_text("contributed by Charlie")
    expect(cited.locator("mark")).to_have_text(PLANTED_FACT)
    share = page.locator("#shares .bar-row")
    expect(share).to_have_count(1)
    expect(share).to_have_attribute("data-contributor", str(charlie.pk))
    expect(share.get_by_test_id("share")).to_have_text(re.compile(r"^100(\.0+)?%$"))
    assert_accessible(page)
    screenshot("journey-retrieval-receipt")

    receipt = RetrievalReceipt.objects.get()
    assert (receipt.requester, receipt.app.slug, receipt.answer_mode) == (rosa, app_slug, "extractive")
    assert receipt.contributor_shares_ppm == {str(charlie.pk): 1_000_000}
