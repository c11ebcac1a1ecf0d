"""A NUL character (%00) in a query parameter is a 400 that says what is wrong, never a 500: PostgreSQL text cannot
hold NUL, and views read some query parameters (search boxes, filters, page numbers) without a form field's
validator in between. The API fuzzer found `GET /api/v1/datanets/?q=…%00…` answering 500 on PostgreSQL."""

import pytest

from datanets.models import Datanet

pytestmark = pytest.mark.django_db

QUERY_STRINGS = ["q=solar%00panels", "task_type=%00", "q=ok&page=1%00", "q%00=1"]


@pytest.mark.parametrize("query", QUERY_STRINGS)
def test_the_api_answers_400_in_its_error_shape(key_client, dora, query):
    response = key_client(dora, "read").get(f"/api/v1/datanets/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_query" and "NUL character (%00)" in body["detail"] and body["fields"] == {}


def test_the_openai_routes_answer_in_openais_shape(key_client, charlie):
    response = key_client(charlie, "infer").get("/v1/models?after=%00")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_query") and "%00" in error["message"]


@pytest.mark.parametrize("path", ["/datanets/?q=solar%00panels", "/datanets/?tag=%00"])
def test_a_page_says_what_is_wrong_and_what_to_do(client, alice, path):
    client.force_login(alice)
    response = client.get(path)
    assert response.status_code == 400
    page = response.content.decode()
    assert "NUL character (%00)" in page and "Remove it and try again" in page and 'href="/"' in page


def test_the_same_search_without_the_nul_works_and_nothing_was_changed(key_client, client, alice, dora):
    Datanet.objects.create(owner=alice, name="Solar panels", slug="solar-panels", task_type="classification",
                           visibility="public")
    before = Datanet.objects.count()
    assert key_client(dora, "read").get("/api/v1/datanets/?q=solar%00panels").status_code == 400
    found = key_client(dora, "read").get("/api/v1/datanets/?q=solar")
    assert found.status_code == 200 and [d["slug"] for d in found.json()["results"]] == ["solar-panels"]
    assert Datanet.objects.count() == before
