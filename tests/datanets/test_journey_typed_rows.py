"""Issue #22, typed rows: the contribute page's grid starts with three lines, numbered, and JavaScript adds and
removes lines (static/js/typed_rows.js; the contributor's browser journey in tests/story drives it). A line
typed without its label is refused in the form, next to its picker, with "choose a label" and the labels to
choose from; a refused grid comes back as typed. Nothing is stored until every typed line is complete."""

import html
import re

import pytest

from datanets.forms import TYPED_ROWS_MAX
from datanets.models import Contribution, ContributionSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def tickets(datanet_factory, alice):
    return datanet_factory(alice, name="Tickets", label_set=["billing", "shipping"])


def contribute(client, datanet, data):
    return client.post(f"/datanets/{datanet.slug}/contribute/", data)


def text_of(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def test_the_empty_grid_has_three_numbered_lines_and_a_label_picker_that_says_choose(client, tickets, dora):
    client.force_login(dora)
    page = client.get(f"/datanets/{tickets.slug}/contribute/").content.decode()
    grid = re.search(r'<table id="typed-rows" data-max="20">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'name="(row-\d+-\w+)"', grid) == ["row-0-text", "row-0-label", "row-1-text", "row-1-label",
                                                         "row-2-text", "row-2-label"]
    assert 'aria-label="Row 3 label"' in grid and '<option value="">Choose a label</option>' in grid
    assert 'id="typed-row-template"' in page and "js/typed_rows.js" in page


def test_a_line_without_a_label_is_refused_with_choose_a_label_and_the_grid_is_kept(client, tickets, dora):
    client.force_login(dora)
    response = contribute(client, tickets, {
        "row-0-text": "I was charged twice", "row-0-label": "billing",
        "row-1-text": "", "row-1-label": "",  # an empty line is skipped, and keeps its number
        "row-2-text": "Where is my parcel", "row-2-label": ""})
    assert response.status_code == 200
    page = text_of(response)
    assert "Row 3: choose a label (one of billing, shipping)." in page
    assert ('<select name="row-2-label" data-column="label" aria-label="Row 3 label" aria-invalid="true" '
            'aria-describedby="row-2-label-error">') in page
    assert '<span class="error" id="row-2-label-error">Choose a label (one of billing, shipping).</span>' in page
    assert 'value="I was charged twice"' in page and 'value="Where is my parcel"' in page
    assert "<option selected>billing</option>" in page
    assert not Contribution.objects.filter(contributor=dora).exists()


def test_a_label_outside_the_datanet_and_a_missing_text_are_both_named(client, tickets, dora):
    client.force_login(dora)
    page = text_of(contribute(client, tickets, {"row-0-text": "Refund please", "row-0-label": "refunds",
                                                "row-1-text": "", "row-1-label": "shipping"}))
    assert "Row 1: choose a label (one of billing, shipping). Row 2: fill in the text." in page
    assert '<span class="error" id="row-1-text-error">Fill in the text.</span>' in page
    assert not Contribution.objects.filter(contributor=dora).exists()


def test_nothing_typed_says_what_to_do(client, tickets, dora):
    client.force_login(dora)
    page = text_of(contribute(client, tickets, {"row-0-text": " ", "row-0-label": ""}))
    assert "Type at least one row, or choose a file to upload." in page
    assert page.count("data-typed-row") == 2  # the line sent, and the template's


def test_complete_lines_are_stored_in_order_whatever_their_numbers(client, tickets, dora,
                                                                  django_capture_on_commit_callbacks):
    client.force_login(dora)
    with django_capture_on_commit_callbacks(execute=True):
        response = contribute(client, tickets, {  # lines 0 and 1 were removed in the browser before renumbering
            "row-10-text": "Where is my parcel", "row-10-label": "shipping",
            "row-2-text": "I was charged twice", "row-2-label": "billing"})
    contribution = Contribution.objects.get(contributor=dora)
    assert response.status_code == 302 and response.url == contribution.get_absolute_url()
    assert contribution.source == ContributionSource.FORM
    rows = list(contribution.records.order_by("row_number").values_list("fields", flat=True))
    assert rows == [{"text": "I was charged twice", "label": "billing"},
                    {"text": "Where is my parcel", "label": "shipping"}]


def test_more_lines_than_the_grid_holds_are_refused_and_kept(client, tickets, dora):
    client.force_login(dora)
    data = {}
    for i in range(TYPED_ROWS_MAX + 1):
        data |= {f"row-{i}-text": f"ticket number {i}", f"row-{i}-label": "billing"}
    page = text_of(contribute(client, tickets, data))
    assert f"Type at most {TYPED_ROWS_MAX} rows at a time; upload a file for more." in page
    assert f'value="ticket number {TYPED_ROWS_MAX}"' in page  # nothing typed is dropped
    assert not Contribution.objects.filter(contributor=dora).exists()
