"""The pages of a Documents Datanet: the create form offers the task type, the contribute page takes several
documents at once, the contribution, Datanet and version pages name passages by document and anchor, and the
version page searches (a whole page without htmx, the results alone with it)."""

import re

import pytest
from django.urls import reverse
from documents_support import HTML_PAGE, PDF_PAGES, PLANTED_FACT, text_pdf, uploaded

from datanets.models import Datanet, TaskType

pytestmark = pytest.mark.django_db


def text_of(response):
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def test_the_create_form_offers_documents_and_refuses_metadata_columns_for_them(client, alice):
    client.force_login(alice)
    form = client.get(reverse("datanets:create")).content.decode()
    assert '<option value="documents">Documents (passages for retrieval)</option>' in form
    base = {"name": "Field manuals", "task_type": "documents", "licence": "CC-BY-4.0", "visibility": "public",
            "contribution_policy": "anyone", "training_access": "open", "max_field_length": 10000,
            "max_rows_per_contribution": 100000}
    refused = client.post(reverse("datanets:create"), {**base, "metadata_columns": "source"})
    assert refused.status_code == 200 and "has no metadata columns" in refused.content.decode()
    created = client.post(reverse("datanets:create"), base)
    datanet = Datanet.objects.get(name="Field manuals")
    assert created["Location"] == datanet.get_absolute_url() and datanet.task_type == TaskType.DOCUMENTS
    assert datanet.schema.columns == ("text", "document", "anchor", "page", "headings")


def test_contribute_several_documents_and_read_the_report_by_document_and_anchor(client, documents_datanet, alice, dora,
                                                                                 django_capture_on_commit_callbacks):
    datanet = documents_datanet(alice)
    client.force_login(dora)
    page = client.get(reverse("datanets:contribute", args=[datanet.slug])).content.decode()
    assert 'type="file" name="documents" multiple' in page and "Or type rows" not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("datanets:contribute", args=[datanet.slug]), {"documents": [
            uploaded("coastal-energy.pdf", text_pdf(PDF_PAGES)), uploaded("locked.pdf", text_pdf([["x"]], password="pw"))]})
    contribution = datanet.contributions.get()
    assert response["Location"] == contribution.get_absolute_url()
    report = text_of(client.get(contribution.get_absolute_url()))
    assert "“Locked.pdf”" not in report and "“locked.pdf” encrypted_pdf “locked.pdf”: This PDF is protected" in report
    assert "“coastal-energy.pdf”, p. 2 Site summaries. " + PLANTED_FACT[:40] in report
    empty = client.post(reverse("datanets:contribute", args=[datanet.slug]), {})
    assert empty.status_code == 200 and "This field is required." in empty.content.decode()


def test_datanet_and_version_pages_list_documents_and_search(client, documents_datanet, alice, dora, contribute_documents,
                                                             publish_all):
    datanet = documents_datanet(alice)
    contribute_documents(datanet, dora, {"coastal-energy.pdf": text_pdf(PDF_PAGES), "guide.html": HTML_PAGE})
    card = text_of(client.get(datanet.get_absolute_url()))
    assert "0 accepted passages" in card and "No accepted passages yet." in card
    publish_all(datanet, alice)
    card = text_of(client.get(datanet.get_absolute_url()))
    assert "5 accepted passages" in card and "coastal-energy.pdf 3 1 guide.html 2 1" in card

    version = text_of(client.get(reverse("datanets:version", args=[datanet.slug, 1])))
    assert "Documents in this version (2)" in version and "Search this version" in version
    assert "5 passages indexed with sentence-transformers/all-MiniLM-L6-v2" in version

    url = reverse("retrieval:version_search", args=[datanet.slug, 1])
    whole = client.get(url, {"q": "Harrowgate turbine power", "mode": "hybrid"})
    assert whole.status_code == 200 and "<h1>Search v1</h1>" in whole.content.decode()
    results = text_of(whole)
    assert "coastal-energy.pdf · p. 2 · contributed by Dora · #1" in results
    partial = client.get(url, {"q": "bus to the lighthouse", "mode": "lexical"}, headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="search-results"') and "<h1>" not in body
    assert "guide.html · Visitor guide › Getting there" in text_of(partial)
    nothing = text_of(client.get(url, {"q": "zyxwvut", "mode": "lexical"}, headers={"HX-Request": "true"}))
    assert "No passage matches “zyxwvut”." in nothing
