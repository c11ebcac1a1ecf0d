"""Small things a new user notices (#22 comforts): a favicon on every page, a styled 500 page, plurals spelled right
(in admin, and "1 row", "1 contributor" on the pages), and none of the typos the issue quotes ("Epoch summarys", "a instruction
Datanet", "The messages is")."""

import html
import re
from types import ModuleType

import pytest
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.urls import path

from inference import validation
from inference.errors import OpenAIError
from models_registry.models import BaseModel
from models_registry.services import fine_tune_create


def test_every_page_links_a_favicon_that_exists(client, db):
    page = client.get("/").content.decode()
    assert '<link rel="icon" href="/static/img/favicon.svg"' in page
    found = finders.find("img/favicon.svg")
    assert found and open(found, encoding="utf-8").read().lstrip().startswith("<svg")


def test_admin_spells_epoch_summaries(admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert "Epoch summaries" in index and "summarys" not in index.lower()


def _text(html: str) -> str:
    """What a reader sees: the tags dropped, the white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


ONE_PLURAL = re.compile(r"\b1 (?:accepted |exact |near |held-out )?(?:rows|contributors|versions|duplicates|passages|"
                        r"groups)\b")


def test_one_row_from_one_contributor_is_said_in_the_singular(client, alice, publish):
    version = publish(alice, [{"text": "I was charged twice", "label": "billing"}], name="Solo")
    datanet = version.datanet
    contribution = datanet.contributions.get()
    client.force_login(alice)
    pages = ["/datanets/", f"/datanets/{datanet.slug}/", f"/datanets/{datanet.slug}/versions/1/",
             f"/datanets/{datanet.slug}/rows/", f"/datanets/{datanet.slug}/review/?status=accepted",
             f"/datanets/{datanet.slug}/contributors/{alice.username}/",
             f"/datanets/{datanet.slug}/contributions/{contribution.pk}/", "/models/jobs/new/"]
    seen = {}
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        seen[url] = _text(html.unescape(response.content.decode()))
        assert not ONE_PLURAL.search(seen[url]), f"{url}: {ONE_PLURAL.search(seen[url]).group()}"
    assert "1 accepted row ·" in seen["/datanets/"]
    assert "1 contributor" in seen[f"/datanets/{datanet.slug}/"]
    assert "1 from 1 contributor" in seen[f"/datanets/{datanet.slug}/versions/1/"]
    assert "Solo v1 · 1 row ·" in seen["/models/jobs/new/"]


def test_a_datanet_of_another_task_is_named_with_the_right_article(alice, intent_rows, publish):
    tickets = publish(alice, intent_rows(1), name="Tickets")
    sums = publish(alice, [{"prompt": "What is 1 plus 1?", "response": "2"}], task_type="instruction", labels=(),
                   name="Sums")
    both = BaseModel.objects.create(name="Tiny Llama", slug="tiny-llama", source_kind="path", source_ref="/nowhere",
                                    architecture="llama", task_types=["text-classification", "instruction"])
    with pytest.raises(ValidationError) as refused:
        fine_tune_create(owner=alice, name="mixed", base_model=both, datanet_versions=[tickets, sums])
    message = " ".join(refused.value.messages)
    assert "is an instruction Datanet; this job's task is text-classification" in message
    assert "a instruction" not in message


def test_overlong_messages_are_counted_in_a_sentence_that_agrees(settings):
    settings.INFERENCE_MAX_PROMPT_CHARS = 10
    with pytest.raises(OpenAIError) as refused:
        validation.messages({"messages": [{"role": "user", "content": "where is my parcel"}]})
    assert refused.value.code == "context_length_exceeded"
    assert refused.value.message.startswith("The messages total 18 characters; at most 10 are accepted.")
    with pytest.raises(OpenAIError) as single:
        validation.prompt({"prompt": "where is my parcel"})
    assert single.value.message.startswith("The prompt is 18 characters;")


def _crash(request):
    raise RuntimeError("a bug nobody should read about")


def test_a_crash_answers_the_styled_500_page_and_the_api_its_json(client, db, settings):
    from lineage import urls

    crashing = ModuleType("crashing_urls")  # the site's URLs, and two that crash
    crashing.urlpatterns = [path("crash/", _crash), path("api/v1/crash/", _crash), *urls.urlpatterns]
    crashing.handler404, crashing.handler500 = urls.handler404, urls.handler500
    settings.ROOT_URLCONF = crashing
    client.raise_request_exception = False
    response = client.get("/crash/")
    assert response.status_code == 500
    page = response.content.decode()
    assert '<link rel="stylesheet" href="/static/css/lineage.css">' in page  # the site's look, as every page has
    assert '<link rel="icon" href="/static/img/favicon.svg"' in page and '<html lang="en">' in page
    assert "<h1>Something went wrong on our side</h1>" in page and '<a href="/">Go home</a>' in page
    assert "a bug nobody should read about" not in page and "RuntimeError" not in page
    api = client.get("/api/v1/crash/")
    assert api.status_code == 500 and api.json()["code"] == "server_error"
    assert "a bug nobody" not in api.content.decode()
