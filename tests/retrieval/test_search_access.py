"""Who may search a version, and what a bad search is told: the Datanet's read rule decides (a private one is
404 to anyone who may not see it, before the query is looked at), a version of a Datanet of rows is not
searchable, and every bad parameter gets a 400 naming it."""

import pytest
from django.urls import reverse
from documents_support import HTML_PAGE, PDF_PAGES, text_pdf

from datanets.services import datanet_create
from retrieval.models import RetrievalIndex

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_handbook(documents_datanet, alice, dora, cast_roles, contribute_documents, publish_all):
    datanet = cast_roles(documents_datanet(alice, name="Private handbook", visibility="private"))
    contribute_documents(datanet, dora, {"coastal-energy.pdf": text_pdf(PDF_PAGES), "guide.html": HTML_PAGE})
    publish_all(datanet, alice)
    return datanet


def test_a_private_datanets_search_is_404_to_strangers_and_open_to_members(private_handbook, dora, charlie, key_client,
                                                                          api_client, client):
    api = f"/api/v1/datanets/{private_handbook.slug}/versions/1/search/"
    page = reverse("retrieval:version_search", args=[private_handbook.slug, 1])
    query = {"q": "Harrowgate turbine"}
    assert api_client.get(api, query).status_code == 404  # anonymous
    stranger = key_client(charlie, "read")
    for params in (query, {}, {"q": "x", "k": 0}):  # 404 whatever else is wrong with the request
        answer = stranger.get(api, params)
        assert answer.status_code == 404 and "Harrowgate" not in answer.content.decode()
    client.force_login(charlie)
    assert client.get(page, query).status_code == 404
    member = key_client(dora, "read")
    assert member.get(api, query).json()["results"][0]["document"] == "coastal-energy.pdf"
    assert key_client(dora, "contribute").get(api, query).status_code == 403  # reading needs the read scope
    client.force_login(dora)
    assert "coastal-energy.pdf" in client.get(page, query).content.decode()


def test_a_public_datanet_is_searched_without_signing_in(documents_datanet, alice, dora, contribute_documents,
                                                         publish_all, api_client):
    datanet = documents_datanet(alice)
    contribute_documents(datanet, dora, {"guide.html": HTML_PAGE})
    publish_all(datanet, alice)
    answer = api_client.get(f"/api/v1/datanets/{datanet.slug}/versions/1/search/", {"q": "bus to the lighthouse"})
    assert answer.status_code == 200 and answer.json()["results"][0]["anchor"] == "Visitor guide › Getting there"
    missing = api_client.get(f"/api/v1/datanets/{datanet.slug}/versions/7/search/", {"q": "bus"})
    assert missing.status_code == 404


BAD_PARAMETERS = [
    ({}, "q"),
    ({"q": "   "}, "q"),
    ({"q": "x" * 1001}, "q"),
    ({"q": "bus", "k": 0}, "k"),
    ({"q": "bus", "k": 51}, "k"),
    ({"q": "bus", "k": "ten"}, "k"),
    ({"q": "bus", "mode": "fuzzy"}, "mode"),
]


def test_bad_search_parameters_are_400_naming_the_parameter(documents_datanet, alice, dora, contribute_documents,
                                                            publish_all, api_client):
    datanet = documents_datanet(alice)
    contribute_documents(datanet, dora, {"guide.html": HTML_PAGE})
    publish_all(datanet, alice)
    for params, field in BAD_PARAMETERS:
        answer = api_client.get(f"/api/v1/datanets/{datanet.slug}/versions/1/search/", params)
        assert answer.status_code == 400, params
        assert answer.json()["code"] == "invalid" and list(answer.json()["fields"]) == [field], params
    page = api_client.get(reverse("retrieval:version_search", args=[datanet.slug, 1]), {"q": " "}).content.decode()
    assert "Type some words to search for." in page


def test_a_version_of_a_datanet_of_rows_is_not_searchable(alice, dora, api_client, client, django_capture_on_commit_callbacks):
    from datanets.services import contribution_create_from_rows, records_review, version_publish

    datanet = datanet_create(owner=alice, name="Plain notes", task_type="text")
    with django_capture_on_commit_callbacks(execute=True):
        contribution = contribution_create_from_rows(datanet=datanet, contributor=dora, rows=[{"text": "A note."}])
    records_review(datanet=datanet, reviewer=alice, record_ids=contribution.records.values_list("pk", flat=True),
                   decision="accept")
    with django_capture_on_commit_callbacks(execute=True):
        version = version_publish(datanet=datanet, actor=alice)
    assert not RetrievalIndex.objects.filter(version=version).exists()
    answer = api_client.get(f"/api/v1/datanets/{datanet.slug}/versions/1/search/", {"q": "note"})
    assert answer.status_code == 400 and answer.json()["code"] == "not_searchable"
    assert "only the versions of a Documents Datanet" in answer.json()["detail"]
    page = client.get(reverse("retrieval:version_search", args=[datanet.slug, 1]), {"q": "note"}).content.decode()
    assert "holds rows, not documents" in page
    version_page = client.get(reverse("datanets:version", args=[datanet.slug, 1])).content.decode()
    assert "Search this version" not in version_page and "Labels" in version_page
