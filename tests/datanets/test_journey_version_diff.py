"""Issue #22, item 11: the versions compare page listed the rows a version added but not the ones it
removed. It now lists both, each under a heading with its count, with the removed rows read from the
earlier version (they are no longer accepted, so only that version still holds them)."""

import html
import re

import pytest
from django.urls import reverse

from datanets import selectors, services
from datanets.models import Record

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions_with_removals(alice, dora, datanet_factory, upload_rows, published_version, rows_of):
    """v1: six of Dora's rows. v2: two of them rejected by the curator, one new row of Alice's."""
    datanet = datanet_factory(alice)
    upload_rows(datanet, dora, rows_of(6))
    v1 = published_version(datanet, alice)
    removed = list(Record.objects.filter(datanet=datanet).order_by("pk")[:2])
    services.records_review(datanet=datanet, reviewer=alice, record_ids=[r.pk for r in removed], decision="reject",
                            reason="Not a product review")
    added = upload_rows(datanet, alice, [{"text": "Brand new: the kettle whistles loudly", "label": "negative"}])
    v2 = published_version(datanet, alice)
    return datanet, v1, v2, removed, added.records.get()


def diff_page(client, datanet, **query) -> str:
    response = client.get(reverse("datanets:version_diff", args=[datanet.slug]), query)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def summary(page: str) -> str:
    return re.sub(r"<[^>]+>", "", re.search(r'<p data-testid="diff-summary">(.*?)</p>', page).group(1))


def table(page: str, table_id: str) -> str:
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', page)
    return match.group(1) if match else ""


def test_removed_rows_are_listed_with_their_count_next_to_the_added_ones(client, versions_with_removals):
    datanet, v1, v2, removed, added = versions_with_removals
    page = diff_page(client, datanet, **{"from": 1, "to": 2})
    assert summary(page) == "1 row added, 2 removed from v1 to v2."
    assert 'Added rows (<span data-testid="added-count">1</span>)' in page
    assert 'Removed rows (<span data-testid="removed-count">2</span>)' in page
    removed_table = table(page, "removed-rows")
    for record in removed:
        assert record.fields["text"] in removed_table and f"<td>{record.pk}</td>" in removed_table
    assert removed_table.count("<tr>") == 3  # header and two rows
    assert "Rejected" in removed_table and "Dora" in removed_table
    assert "Not a product review" not in page  # the curator's reason is for the contributor, not the public
    added_table = table(page, "added-rows")
    assert added.fields["text"] in added_table and removed[0].fields["text"] not in added_table


def test_comparing_backwards_swaps_added_and_removed(client, versions_with_removals):
    datanet, v1, v2, removed, added = versions_with_removals
    page = diff_page(client, datanet, **{"from": 2, "to": 1})
    assert summary(page) == "2 rows added, 1 removed from v2 to v1."
    assert all(r.fields["text"] in table(page, "added-rows") for r in removed)
    assert added.fields["text"] in table(page, "removed-rows")


def test_a_diff_with_nothing_removed_has_no_removed_table(client, alice, datanet_factory, published_version, rows_of):
    datanet = datanet_factory(alice)
    published_version(datanet, alice, rows_of(3))
    published_version(datanet, alice, rows_of(2, start=10))
    page = diff_page(client, datanet)  # the latest two by default
    assert summary(page) == "2 rows added, 0 removed from v1 to v2."
    assert 'id="removed-rows"' not in page and "Removed rows (" not in page


def test_bad_version_numbers_are_explained(client, versions_with_removals):
    datanet = versions_with_removals[0]
    assert "Version numbers are whole numbers" in diff_page(client, datanet, **{"from": "one", "to": 2})
    assert "Choose two published versions." in diff_page(client, datanet, **{"from": 1, "to": 9})


def test_long_lists_are_cut_to_a_page_and_say_so(versions_with_removals, monkeypatch, client):
    datanet, v1, v2, removed, added = versions_with_removals
    rows = selectors.version_rows_among(version=v1, row_ids=[r.pk for r in removed] + [added.pk], limit=1)
    assert list(rows) == [removed[0]]  # only rows the version holds, the first by id
    from datanets import views

    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    page = diff_page(client, datanet, **{"from": 1, "to": 2})
    assert 'Removed rows (<span data-testid="removed-count">2</span>)' in page
    assert table(page, "removed-rows").count("<tr>") == 2 and "the first 1 by row id" in page
