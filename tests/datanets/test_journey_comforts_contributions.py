"""Issue #22, "My contributions": a signed-in contributor reaches, from the navigation, every upload they
made across Datanets with its state and its rows' outcome (accepted, waiting, rejected by a curator,
invalid, duplicate), links to its rows and errors, the reason of each row a curator rejected, and a notice
when curators rejected some."""

import re

import pytest
from browser_support import assert_accessible, login
from playwright.sync_api import expect

from datanets.models import Record
from datanets.services import membership_remove, membership_set, records_review

pytestmark = pytest.mark.django_db

TICKETS = [{"text": "I was charged twice for March", "label": "billing"},
           {"text": "Where is my parcel", "label": "shipping"},
           {"text": "Please reset my password", "label": "refunds"},  # not a label: invalid
           {"text": "Where is my parcel", "label": "shipping"},  # an exact duplicate
           {"text": "Hello, is anyone there", "label": "account"}]


@pytest.fixture
def contributed(datanet_factory, upload_rows, alice, dora):
    """Dora's uploads to two of Alice's Datanets: tickets (one accepted, one rejected with a reason, one
    waiting, one invalid, one duplicate) and reviews (waiting)."""
    tickets = datanet_factory(alice, name="Support tickets", label_set=["billing", "shipping", "account"])
    reviews = datanet_factory(alice, name="Product reviews")
    upload = upload_rows(tickets, dora, TICKETS)
    rows = {r.fields["text"]: r for r in Record.objects.filter(contribution=upload)}
    records_review(datanet=tickets, reviewer=alice, record_ids=[rows["I was charged twice for March"].pk],
                   decision="accept")
    records_review(datanet=tickets, reviewer=alice, record_ids=[rows["Hello, is anyone there"].pk],
                   decision="reject", reason="Not a support request")
    second = upload_rows(reviews, dora, [{"text": "The kettle is quiet and fast", "label": "positive"}])
    return {"tickets": tickets, "reviews": reviews, "upload": upload, "second": second}


def test_my_contributions_lists_each_upload_with_its_rows_outcome(client, contributed, dora, charlie):
    client.force_login(dora)
    page = client.get("/datanets/contributions/mine/")
    assert page.status_code == 200
    uploads = list(page.context["uploads"])
    assert [u.pk for u in uploads] == [contributed["second"].pk, contributed["upload"].pk]  # newest first
    tickets = uploads[1]
    assert (tickets.accepted_rows, tickets.pending_rows, tickets.rejected_rows) == (1, 1, 1)
    assert (tickets.rows_rejected, tickets.rows_duplicate) == (1, 1)
    html = page.content.decode()
    assert "Not a support request" in html and 'data-testid="rejected-notice"' in html
    assert "Curators rejected 1 of your rows (1 in the last 7 days)" in html
    # Another contributor sees none of Dora's uploads, and no notice.
    client.force_login(charlie)
    other = client.get("/datanets/contributions/mine/")
    assert list(other.context["uploads"]) == [] and "rejected-notice" not in other.content.decode()
    assert "You have not contributed yet" in other.content.decode()


def test_the_page_needs_a_sign_in_and_the_nav_links_it_only_then(client, contributed, dora):
    assert client.get("/datanets/contributions/mine/").status_code == 302
    assert "My contributions" not in client.get("/").content.decode()
    client.force_login(dora)
    assert '<a href="/datanets/contributions/mine/">My contributions</a>' in client.get("/").content.decode()


def test_an_upload_to_a_datanet_no_longer_visible_is_listed_without_links(client, datanet_factory, upload_rows,
                                                                         alice, dora):
    private = datanet_factory(alice, name="Private tickets", visibility="private")
    membership_set(datanet=private, actor=alice, user=dora, role="contributor")
    upload = upload_rows(private, dora, [{"text": "Secret ticket", "label": "positive"}])
    membership_remove(datanet=private, actor=alice, user=dora)
    client.force_login(dora)
    html = client.get("/datanets/contributions/mine/").content.decode()
    assert "Private tickets" in html and "no longer visible to you" in html
    assert upload.get_absolute_url() not in html and private.get_absolute_url() not in html


def test_bad_page_numbers_fall_back_to_a_real_page(client, contributed, dora):
    client.force_login(dora)
    for query in ("?page=abc", "?page=999", "?rejected_page=-1"):
        response = client.get("/datanets/contributions/mine/" + query)
        assert response.status_code == 200 and len(response.context["uploads"]) == 2


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_contributor_finds_their_uploads_and_the_curators_reasons(live_server, page, contributed, dora):
    login(page, live_server, dora)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My contributions").click()
    expect(page.get_by_role("heading", name="My contributions", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="My contributions")).to_have_attribute("aria-current", "page")
    assert_accessible(page)

    notice = page.get_by_test_id("rejected-notice")
    expect(notice).to_contain_text("Curators rejected 1 of your rows")
    tickets = page.locator(f"tr[data-contribution='{contributed['upload'].pk}']")
    expect(tickets).to_contain_text("Support tickets")
    expect(tickets.get_by_test_id("upload-state")).to_have_text("In review")
    for testid, count in (("upload-accepted", "1"), ("upload-pending", "1"), ("upload-rejected", "1"),
                          ("upload-invalid", "1"), ("upload-duplicate", "1")):
        expect(tickets.get_by_test_id(testid)).to_have_text(count)
    reviews = page.locator(f"tr[data-contribution='{contributed['second'].pk}']")
    expect(reviews.get_by_test_id("upload-pending")).to_have_text("1")
    expect(reviews.get_by_role("link", name="Errors")).to_have_count(0)  # nothing was refused there
    rejected = page.locator("#rejected tr", has_text="Hello, is anyone there")
    expect(rejected.get_by_test_id("rejection-reason")).to_have_text("Not a support request")

    # The notice leads to the reasons; the upload's links lead to its rows and its errors.
    notice.get_by_role("link", name="See each reason").click()
    expect(page).to_have_url(re.compile(r"#rejected-rows$"))
    tickets.get_by_role("link", name="Errors").click()
    expect(page.get_by_role("heading", name="Rows that were not accepted (2)")).to_be_visible()
    expect(page.locator("#row-errors")).to_contain_text("refunds")
    assert_accessible(page)
    page.go_back()
    page.go_back()
    tickets.get_by_role("link", name="Rows").click()
    expect(page.locator("#rows tr[data-status='rejected']")).to_contain_text("Not a support request")
