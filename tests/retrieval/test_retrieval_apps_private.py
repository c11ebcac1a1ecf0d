"""Issue #19: retrieval apps over private Datanets. An owner builds an app over a private Datanet she may read and
build on; those who may read every Datanet behind it ask it, find it in `/v1/models`, the playground and the apps
page; to anyone else it does not exist (OpenAI's 404 `model_not_found`, word for word as for a model that does not
exist; not listed anywhere), and no citation, receipt or page shows them a private Datanet's passages. Losing access
(a membership ended, a Datanet made private) takes the app away at once."""

import json

import pytest
from documents_support import PLANTED_FACT

from datanets.services import datanet_update, membership_remove
from inference import services as inference_services
from inference.errors import OpenAIError
from inference.validation import sampling
from retrieval import services
from retrieval.models import RetrievalReceipt

pytestmark = pytest.mark.django_db

OPENING = "When does the visitor centre open?"


@pytest.fixture
def private_handbook(indexed_handbook, alice, dora):
    """Alice's private Documents Datanet (bob curates it, dora is its contributor member): her PDF with the planted
    fact and dora's visitor guide, version 1 published and indexed."""
    return indexed_handbook(alice, {alice: ["coastal-energy.pdf"], dora: ["visitor-guide.html"]}, cast=True,
                            name="Private handbook", visibility="private")


def chat(client, model, question, **extra):
    return client.post("/v1/chat/completions",
                       {"model": model, "messages": [{"role": "user", "content": question}], **extra}, format="json")


def listed_models(client):
    return {m["id"] for m in client.get("/v1/models").json()["data"]}


def not_found_as_if_absent(client, slug):
    """The 404 a caller gets for `slug`, and for a model that does not exist, with the name swapped back."""
    response = chat(client, slug, OPENING)
    absent = chat(client, "no-such-model", OPENING).json()
    absent["error"]["message"] = absent["error"]["message"].replace("no-such-model", slug)
    return response.status_code, response.json(), absent


def test_readers_ask_a_private_app_and_nobody_else_learns_it_exists(private_handbook, alice, bob, dora, charlie,
                                                                    key_client, client):
    app = services.app_deploy(owner=alice, name="Private answers", versions=[private_handbook.pk])

    # Its members ask it: listed, described, answered with citations of the private passages.
    member = key_client(dora, "infer")
    assert app.slug in listed_models(member) and app.slug in listed_models(key_client(bob, "infer"))
    described = member.get(f"/v1/models/{app.slug}").json()
    assert described["lineage"]["datanet_versions"] == [f"{private_handbook.datanet.slug}@1"]
    answer = chat(member, app.slug, OPENING)
    assert answer.status_code == 200, answer.json()
    [citation] = answer.json()["lineage"]["citations"]
    assert (citation["document"], citation["contributor"], citation["datanet"]) == (
        "visitor-guide.html", "Dora", private_handbook.datanet.slug)
    assert answer.json()["choices"][0]["message"]["content"].startswith("“The visitor centre opens at nine")

    # To the stranger it does not exist: not listed, and 404 exactly as a model that does not exist.
    stranger = key_client(charlie, "infer")
    assert app.slug not in listed_models(stranger)
    status, body, absent = not_found_as_if_absent(stranger, app.slug)
    assert status == 404 and body == absent and body["error"]["code"] == "model_not_found"
    streamed = chat(stranger, app.slug, OPENING, stream=True)
    assert streamed.status_code == 404 and streamed.json()["error"]["code"] == "model_not_found"
    described = stranger.get(f"/v1/models/{app.slug}")
    assert described.status_code == 404 and described.json()["error"]["code"] == "model_not_found"
    assert RetrievalReceipt.objects.filter(requester=charlie).count() == 0

    # Nor on the pages: the apps list, the app's page and the playground.
    client.force_login(charlie)
    assert app.slug not in client.get("/retrieval-apps/").content.decode()
    assert client.get(app.get_absolute_url()).status_code == 404
    assert f'value="{app.slug}"' not in client.get("/playground/").content.decode()
    client.logout()
    assert app.slug not in client.get("/retrieval-apps/").content.decode()
    client.force_login(dora)
    assert app.slug in client.get("/retrieval-apps/").content.decode()
    assert 'data-testid="private-datanet"' in client.get(app.get_absolute_url()).content.decode()
    assert f'value="{app.slug}"' in client.get("/playground/").content.decode()

    # Dora's receipt shows her the passage; the stranger holding its link sees no document, Datanet, contributor
    # or text of the private Datanet.
    receipt = RetrievalReceipt.objects.get(receipt_id=answer.json()["lineage"]["receipt_id"])
    shown = client.get(receipt.get_absolute_url()).content.decode()
    assert "The visitor centre opens at nine" in shown and "visitor-guide.html" in shown and "Dora" in shown
    client.force_login(charlie)
    hidden = client.get(receipt.get_absolute_url()).content.decode()
    assert "A passage of a private Datanet you may not read" in hidden
    for secret in ("The visitor centre opens at nine", "visitor-guide.html", "Private handbook", "Opening hours",
                   "Dora", OPENING):
        assert secret not in hidden


def test_the_app_answers_only_those_who_may_read_every_datanet_behind_it(
        private_handbook, indexed_handbook, alice, dora, charlie, make_user, key_client):
    # Owen's public handbook and alice's private one: alice may build on both (owen's is open to anyone).
    owen = make_user("owen")  # outside the cast: a second owner, whose public Datanet alice builds on
    public = indexed_handbook(owen, {owen: ["coastal-energy.pdf"]}, name="Public handbook")
    app = services.app_deploy(owner=alice, name="Both handbooks", versions=[public.pk, private_handbook.pk])
    assert chat(key_client(dora, "infer"), app.slug, OPENING).status_code == 200
    # Charlie reads owen's public Datanet, not alice's private one: the app is not his to ask.
    status, body, absent = not_found_as_if_absent(key_client(charlie, "infer"), app.slug)
    assert status == 404 and body == absent
    assert app.slug not in listed_models(key_client(charlie, "infer"))


def test_losing_access_takes_the_app_away(private_handbook, indexed_handbook, alice, dora, charlie, key_client):
    app = services.app_deploy(owner=alice, name="Private answers", versions=[private_handbook.pk])
    member = key_client(dora, "infer")
    assert chat(member, app.slug, OPENING).status_code == 200
    membership_remove(datanet=private_handbook.datanet, actor=alice, user=dora)
    assert app.slug not in listed_models(member)
    status, body, absent = not_found_as_if_absent(member, app.slug)
    assert status == 404 and body == absent

    # The answer itself checks again, next to the search: a request admitted for someone who may not read the
    # Datanet (their membership ended in between) fails as not found, cites nothing and costs nothing.
    receipts = RetrievalReceipt.objects.count()
    inference = inference_services.inference_begin(user=dora, api_key=None, endpoint="chat.completions",
                                                   model=app.slug, resolve=lambda **_: app)
    with pytest.raises(OpenAIError) as refused:
        services.app_answer(inference=inference, app=app, messages=[("user", OPENING)], sampling=sampling({}))
    assert (refused.value.status, refused.value.code) == (404, "model_not_found")
    inference.record.refresh_from_db()
    assert (inference.record.status, int(inference.record.fee or 0)) == ("failed", 0)
    assert RetrievalReceipt.objects.count() == receipts

    # A public Datanet made private after the app was deployed: only its readers may ask the app from then on.
    public = indexed_handbook(alice, {alice: ["visitor-guide.html"]}, name="Alice's guide")
    guide_app = services.app_deploy(owner=alice, name="Guide answers", versions=[public.pk])
    stranger = key_client(charlie, "infer")
    assert chat(stranger, guide_app.slug, OPENING).status_code == 200
    datanet_update(datanet=public.datanet, actor=alice, visibility="private")
    assert guide_app.slug not in listed_models(stranger)
    assert chat(stranger, guide_app.slug, OPENING).status_code == 404
    assert chat(key_client(alice, "infer"), guide_app.slug, OPENING).status_code == 200


def test_streamed_answers_of_a_private_app_reach_its_readers(private_handbook, alice, client):
    app = services.app_deploy(owner=alice, name="Private answers", versions=[private_handbook.pk])
    client.force_login(alice)
    response = client.post("/v1/chat/completions", json.dumps({
        "model": app.slug, "messages": [{"role": "user", "content": "How many homes does the Harrowgate turbine "
                                                                    "power?"}], "stream": True}),
        content_type="application/json")
    assert response.status_code == 200
    events = [line[6:] for line in b"".join(response.streaming_content).decode().split("\n\n") if line]
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == f"“{PLANTED_FACT}” [1]"
    [final] = [c for c in chunks if "lineage" in c]
    assert final["lineage"]["citations"][0]["contributor"] == "Alice"
