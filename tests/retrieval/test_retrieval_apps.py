"""Issue #19, item 3: retrieval apps. A model owner deploys an app over a published Documents Datanet version on its
page; it is a model on `/v1/models` and `/v1/chat/completions`; a fact planted in one contributor's PDF is
retrieved, quoted and cited to her, her share of the fee reaches her through the ledger, and the receipt lists the
cited passage. Bad deployments and bad questions are refused with messages that say what to change; copies of a
passage credit its earliest accepted copy, and the split is the same however passages are spread over accounts."""

import importlib.util
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from documents_support import PLANTED_FACT

from accounts.models import AuditEvent
from datanets.models import Record
from inference.models import InferenceRecord, InferenceStatus
from retrieval import chat as retrieval_chat
from retrieval import services
from retrieval.models import AppState, RetrievalApp, RetrievalReceipt
from retrieval.selectors import PassageResult, index_for
from rewards import ledger
from rewards import services as rewards_services
from rewards.models import AccountKind, PendingFee, Settlement, ShareRole

pytestmark = pytest.mark.django_db


def _serving_fixtures():
    """The serving tests' fixtures (a real model-server process, a tiny Llama fine-tuned and deployed), reused."""
    spec = importlib.util.spec_from_file_location(
        "retrieval_apps_serving", Path(__file__).resolve().parents[1] / "inference" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_serving = _serving_fixtures()
model_server_url, serving, sync, fine_tune, causal_sums_model = (
    _serving.model_server_url, _serving.serving, _serving.sync, _serving.fine_tune, _serving.causal_sums_model)

OPEN = 10**18
PPM = 1_000_000
QUESTION = "How many homes does the Harrowgate turbine power?"


@pytest.fixture
def handbook(documents_datanet, documents, contribute_documents, publish_all, alice, dora, charlie):
    """Alice's Documents Datanet: Dora contributed the PDF with the planted fact, Charlie a Word document and a web
    page; version 1 is published and its search index built."""
    datanet = documents_datanet(alice)
    contribute_documents(datanet, dora, {"coastal-energy.pdf": documents["coastal-energy.pdf"]})
    contribute_documents(datanet, charlie, {n: documents[n] for n in ("training.docx", "visitor-guide.html")})
    version = publish_all(datanet, alice)
    assert index_for(version=version).searchable
    return version


def passage_with(datanet, word):
    [record] = [r for r in Record.objects.filter(datanet=datanet) if word in r.fields["text"]]
    return record


def chat(client, model, question, **extra):
    return client.post("/v1/chat/completions",
                       {"model": model, "messages": [{"role": "user", "content": question}], **extra}, format="json")


def test_deployed_app_quotes_the_planted_fact_cites_dora_and_pays_her(handbook, alice, dora, charlie, client,
                                                                        key_client):
    # Alice deploys the app on its page: extractive (no model of hers), 0.05 OPEN an answer.
    client.force_login(alice)
    response = client.post("/retrieval-apps/new/", {"name": "Coastal answers", "versions": [handbook.pk],
                                                    "causal_model": "", "passages": 4, "price_per_inference": "0.05",
                                                    "description": "Answers from the coastal energy handbook."})
    app = RetrievalApp.objects.get()
    assert response.status_code == 302 and response["Location"] == app.get_absolute_url()
    assert (app.slug, app.owner, app.state, app.answer_mode) == ("coastal-answers", alice, AppState.ACTIVE, "extractive")
    assert int(app.price_per_inference) == OPEN // 20 and list(app.versions.all()) == [handbook]
    assert AuditEvent.objects.filter(action="retrieval.app_deploy", object_id=str(app.pk)).exists()
    page = client.get(app.get_absolute_url()).content.decode()
    assert "coastal-answers" in page and "Coastal energy handbook v1" in page

    # It is a model: listed by /v1/models (with the version it answers from) and in the playground.
    caller = key_client(charlie, "infer")
    listed = {m["id"]: m for m in caller.get("/v1/models").json()["data"]}
    assert listed["coastal-answers"]["lineage"]["answer_mode"] == "extractive"
    assert listed["coastal-answers"]["lineage"]["datanet_versions"] == [f"{handbook.datanet.slug}@1"]
    assert listed["coastal-answers"]["lineage"]["price_per_inference"] == str(OPEN // 20)
    assert caller.get("/v1/models/coastal-answers").json()["owned_by"] == "Alice"
    assert 'value="coastal-answers"' in client.get("/playground/").content.decode()

    # Charlie asks; the answer is the planted sentence, quoted, with its footnote.
    rewards_services.credit_grant(actor=None, user=charlie, amount=OPEN, reason="test credit")
    answer = chat(caller, "coastal-answers", QUESTION)
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["object"] == "chat.completion" and body["model"] == "coastal-answers"
    assert body["choices"][0]["message"]["content"] == f"“{PLANTED_FACT}” [1]"
    lineage = body["lineage"]
    fact = passage_with(handbook.datanet, "Harrowgate")
    [citation] = lineage["citations"]
    assert {k: citation[k] for k in ("number", "passage_id", "record_id", "document", "anchor", "datanet",
                                     "datanet_version", "version_hash", "contributor", "credited_contributor",
                                     "quote")} == {
        "number": 1, "passage_id": f"r{fact.pk}", "record_id": fact.pk, "document": "coastal-energy.pdf",
        "anchor": "p. 2", "datanet": handbook.datanet.slug, "datanet_version": 1,
        "version_hash": handbook.manifest_hash, "contributor": "Dora", "credited_contributor": "Dora",
        "quote": PLANTED_FACT}
    assert citation["score"] > 0
    assert lineage["contributors"] == [
        {"user_id": dora.pk, "name": "Dora", "share_ppm": PPM, "rows": [f"r{fact.pk}"]}]
    assert (lineage["fee"], lineage["answer_mode"], lineage["receipt_status"]) == (
        str(OPEN // 20), "extractive", "ready")
    assert lineage["model_version_hash"] == app.app_hash

    # The receipt lists the cited passage; the attribution receipt address leads to it too.
    receipt = RetrievalReceipt.objects.get(receipt_id=lineage["receipt_id"])
    assert (receipt.inference_id, receipt.requester, receipt.input_text) == (lineage["inference_id"], charlie, QUESTION)
    assert receipt.contributor_shares_ppm == {str(dora.pk): PPM}
    assert [c["passage_id"] for c in receipt.citations] == [f"r{fact.pk}"]
    assert lineage["receipt_url"].endswith(receipt.get_absolute_url())
    client.force_login(charlie)
    shown = client.get(receipt.get_absolute_url()).content.decode()
    assert f'data-passage="r{fact.pk}"' in shown and "contributed by Dora" in shown and PLANTED_FACT in shown
    assert QUESTION in shown  # the asker sees the question
    assert client.get(f"/attribution/receipts/{receipt.receipt_id}/")["Location"] == receipt.get_absolute_url()
    record = InferenceRecord.objects.get(pk=lineage["inference_id"])
    assert (record.status, record.model_slug, int(record.fee), record.receipt_id) == (
        InferenceStatus.SUCCEEDED, "coastal-answers", OPEN // 20, receipt.receipt_id)

    # The fee was held on Charlie's credit with Dora's share; the next batch books it through the ledger.
    assert PendingFee.objects.get(inference_id=lineage["inference_id"]).contributor_shares == {str(dora.pk): PPM}
    rewards_services.fees_settle_pending()
    settlement = Settlement.objects.get(inference_id=lineage["inference_id"])
    expected = rewards_services.fee_split(fee=OPEN // 20, policy=rewards_services.fee_policy_current(),
                                          contributor_shares={dora.pk: PPM})
    share = settlement.shares.get(role=ShareRole.CONTRIBUTOR)
    assert (share.user, share.amount, share.rows) == (dora, expected.contributors[dora.pk], [f"r{fact.pk}"])
    assert expected.contributors[dora.pk] > 0
    assert ledger.balance(kind=AccountKind.EARNINGS, user=dora) == expected.contributors[dora.pk]
    assert settlement.shares.get(role=ShareRole.OWNER).user == alice
    assert ledger.balance(kind=AccountKind.CREDIT, user=charlie) == OPEN - OPEN // 20
    assert settlement.receipt_id == receipt.receipt_id


def test_streamed_answer_from_the_playground_carries_the_citations(handbook, alice, charlie, client):
    app = services.app_deploy(owner=alice, name="Handbook", versions=[handbook.pk])
    client.force_login(charlie)
    response = client.post("/v1/chat/completions", json.dumps({
        "model": app.slug, "messages": [{"role": "user", "content": "When does the visitor centre open?"}],
        "stream": True, "stream_options": {"include_usage": True}}), content_type="application/json")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = [line[6:] for line in b"".join(response.streaming_content).decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("“The visitor centre opens at nine in the morning") and text.endswith("” [1]")
    # The answer comes word by word (each piece a word and the spaces after it), then the citations, the usage
    # and [DONE], in that order.
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert pieces == retrieval_chat.answer_pieces(text) and len(pieces) == len(text.split()) > 5
    assert pieces[:3] == ["“The ", "visitor ", "centre "] and pieces[-1] == "[1]"
    assert all("lineage" not in c and c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    [final] = [c for c in chunks if "lineage" in c]
    assert final is chunks[-2] and final["choices"][0]["delta"] == {}
    assert final["choices"][0]["finish_reason"] == "stop" and final["lineage"]["fee"] == "0"
    [citation] = final["lineage"]["citations"]
    assert (citation["document"], citation["anchor"], citation["contributor"]) == (
        "visitor-guide.html", "Visitor guide › Opening hours", "Charlie")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 0


@pytest.mark.parametrize("text, pieces", [
    ("“Nine in the morning.” [1]", ["“Nine ", "in ", "the ", "morning.” ", "[1]"]),
    ("  Two  lines\nhere ", ["  ", "Two  ", "lines\n", "here "]),
    ("one", ["one"]),
    ("", [""]),
])
def test_streamed_pieces_are_words_that_join_to_the_answer(text, pieces):
    assert retrieval_chat.answer_pieces(text) == pieces and "".join(pieces) == text


def test_a_causal_model_writes_the_answer_from_the_cited_passages(handbook, causal_sums_model, alice, charlie,
                                                                  key_client):
    model, _ = causal_sums_model  # Alice's tiny Llama, deployed and loaded by the model server
    app = services.app_deploy(owner=alice, name="Written answers", versions=[handbook.pk], causal_model=model.slug,
                              passages=1)
    assert app.answer_mode == "generative"
    answer = chat(key_client(charlie, "infer"), app.slug, "Harrowgate homes?", max_tokens=6, temperature=0)
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    lineage = body["lineage"]
    assert lineage["answer_mode"] == "generative" and body["usage"]["completion_tokens"] > 0
    # The prompt carried the passage (about 220 characters) with the question: more tokens than the question has
    # characters, even for this tiny byte-level tokenizer.
    assert body["usage"]["prompt_tokens"] > 100
    [citation] = lineage["citations"]
    assert (citation["document"], citation["anchor"], citation["contributor"], citation["quote"]) == (
        "coastal-energy.pdf", "p. 2", "Dora", "")
    assert lineage["contributors"][0]["share_ppm"] == PPM
    receipt = RetrievalReceipt.objects.get(receipt_id=lineage["receipt_id"])
    assert (receipt.answer_mode, receipt.output) == ("generative", body["choices"][0]["message"]["content"])

    # Streamed, the model's tokens arrive as it writes them (the same greedy answer), then the citations with the
    # answer's own receipt, the usage and [DONE] (tests/retrieval/test_retrieval_app_streaming.py pauses a stand-in
    # server mid-answer to show the tokens arrive before the answer is complete).
    streamed = chat(key_client(charlie, "infer"), app.slug, "Harrowgate homes?", max_tokens=6, temperature=0,
                    stream=True, stream_options={"include_usage": True})
    assert streamed.status_code == 200 and streamed["Content-Type"] == "text/event-stream"
    events = [line[6:] for line in b"".join(streamed.streaming_content).decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    # Several token deltas, though the tiny model's answer has no space to cut words at.
    assert "".join(pieces) == body["choices"][0]["message"]["content"] and len(pieces) > 1
    final, usage = chunks[-2:]
    assert final["choices"][0]["finish_reason"] == body["choices"][0]["finish_reason"]
    assert final["lineage"]["citations"] == lineage["citations"]
    assert final["lineage"]["receipt_id"] != lineage["receipt_id"]
    assert usage["usage"] == body["usage"]
    assert RetrievalReceipt.objects.get(receipt_id=final["lineage"]["receipt_id"]).output == "".join(pieces)


def test_bad_questions_get_clear_400s(handbook, alice, charlie, key_client, settings):
    app = services.app_deploy(owner=alice, name="Handbook", versions=[handbook.pk])
    caller = key_client(charlie, "infer")
    empty = chat(caller, app.slug, "   ")
    assert empty.status_code == 400
    assert empty.json()["error"]["message"] == "'messages' must contain a user message with some text."
    settings.RETRIEVAL_MAX_QUERY_CHARS = 20
    long = chat(caller, app.slug, "Which turbine powers the homes of the Fennick coast?")
    assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded"
    assert "at most 20" in long.json()["error"]["message"]
    completions = caller.post("/v1/completions", {"model": app.slug, "prompt": "Harrowgate"}, format="json")
    assert completions.status_code == 400 and completions.json()["error"]["code"] == "model_not_supported"
    assert "/v1/chat/completions" in completions.json()["error"]["message"]
    rewards_services.credit_grant(actor=None, user=charlie, amount=1, reason="too little")
    RetrievalApp.objects.filter(pk=app.pk).update(price_per_inference=OPEN)
    short = chat(caller, app.slug, "Harrowgate")
    assert short.status_code == 429 and short.json()["error"]["code"] == "insufficient_quota"
    assert not RetrievalReceipt.objects.exists() and not PendingFee.objects.exists()
    services.app_retire(app=app, actor=alice)
    gone = chat(caller, app.slug, "Harrowgate")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert app.slug not in {m["id"] for m in caller.get("/v1/models").json()["data"]}


def test_bad_deployments_are_refused_with_reasons(documents_datanet, documents, contribute_documents, publish_all,
                                                  publish, alice, charlie, client):
    # Every Datanet is alice's; charlie, a stranger, tries to deploy an app over them.
    visitor = {"visitor-guide.html": documents["visitor-guide.html"]}
    building = documents_datanet(alice, name="Guides")
    contribute_documents(building, alice, visitor)
    unbuilt = publish_all(building, alice, build=False)  # published; its index is still queued
    private = documents_datanet(alice, name="Alice's notes", visibility="private")
    contribute_documents(private, alice, visitor)
    hidden = publish_all(private, alice, build=False)
    gated = documents_datanet(alice, name="Gated guides", training_access="approval")
    contribute_documents(gated, alice, visitor)
    approval = publish_all(gated, alice, build=False)
    rows = publish(alice, [{"text": "my parcel is late", "label": "shipping"}] * 1)

    def refused(**kwargs):
        with pytest.raises(ValidationError) as caught:
            services.app_deploy(owner=charlie, **{"name": "Answers", "versions": [], **kwargs})
        return caught.value.message_dict

    assert refused()["versions"] == ["Choose at least one published version of a Documents Datanet."]
    problems = refused(versions=[99999, hidden.pk, approval.pk, unbuilt.pk, rows.pk])["versions"]
    assert problems[0] == "Version 99999 does not exist or is not published where you can see it."
    assert problems[1] == f"Version {hidden.pk} does not exist or is not published where you can see it."
    assert problems[2].startswith(f"{approval}: Gated guides lets only the people its owner approves")
    assert problems[3].startswith(f"{unbuilt}: The search index of v1 is being built (queued)")
    assert problems[3].endswith("Deploy the app once its index is ready.")
    assert problems[4].startswith(f"{rows}: Intents holds rows, not documents")
    with pytest.raises(ValidationError) as own_private:  # alice may build on her own private Datanet, once indexed
        services.app_deploy(owner=alice, name="Notes", versions=[hidden.pk])
    assert own_private.value.message_dict["versions"] == [
        f"{hidden}: The search index of v1 is being built (queued); search again in a minute. Deploy the app once "
        "its index is ready."]
    assert refused(name="new", versions=[unbuilt.pk])["name"][0].startswith("“new” names a page")
    assert refused(name="notes-deadbeef", versions=[unbuilt.pk])["name"][0].startswith("“notes-deadbeef” ends like")
    assert "passages" in refused(versions=[unbuilt.pk], passages=0)
    assert not RetrievalApp.objects.exists()

    # The page shows the same reasons as form errors, beside the field.
    client.force_login(charlie)
    page = client.post("/retrieval-apps/new/", {"name": "Answers", "versions": [unbuilt.pk], "passages": 4,
                                                "price_per_inference": "0"})
    assert page.status_code == 200 and "is being built" in page.content.decode()
    unknown = client.post("/retrieval-apps/new/", {"name": "Answers", "versions": [hidden.pk], "passages": 4,
                                                   "price_per_inference": "0"})
    assert f"Version {hidden.pk} is not one you can see" in unknown.content.decode()
    causal = client.post("/retrieval-apps/new/", {"name": "Answers", "versions": [unbuilt.pk], "passages": 4,
                                                  "price_per_inference": "0", "causal_model": "someone-elses"})
    assert "Choose one of your deployed instruction or text models, or none." in causal.content.decode()
    assert not RetrievalApp.objects.exists()


def _result(record, score=1.0):
    """A search result for a stored passage, as `selectors.versions_search` makes one."""
    return PassageResult(rank=1, score=score, record_id=record.pk, passage_id=record.row_uid,
                         text=record.fields["text"], document=record.fields["document"], anchor=record.fields["anchor"],
                         page="", headings="", contributor=record.contributor.public_name, dense_score=None,
                         lexical_score=None, contributor_id=record.contributor_id)


def test_copies_credit_the_earliest_accepted_copy_and_accounts_do_not_matter(
        documents_datanet, documents, contribute_documents, alice, dora, charlie, make_user):
    handbook = documents_datanet(alice)
    contribute_documents(handbook, dora, {"coastal-energy.pdf": documents["coastal-energy.pdf"]})
    contribute_documents(handbook, charlie, {"visitor-guide.html": documents["visitor-guide.html"]})
    # Charlie uploads the same PDF to another of alice's Datanets: the same passages, later.
    copy = documents_datanet(alice, name="Copied handbook")
    contribute_documents(copy, charlie, {"copied.pdf": documents["coastal-energy.pdf"]})
    original = passage_with(handbook, "Harrowgate")
    copied = passage_with(copy, "Harrowgate")
    guide = Record.objects.filter(datanet=handbook, contributor=charlie).first()
    for record in (original, copied, guide):
        record.status = "accepted"
        record.save(update_fields=["status"])

    # The copy is cited; its part goes to Dora, whose copy came first (found among the retrieved passages).
    cited = [_result(copied), _result(guide)]
    shares, rows, credited = services.passage_shares(cited, cited + [_result(original, 0.5)])
    assert shares == {dora.pk: 500_000, charlie.pk: 500_000} and rows[dora.pk] == [original.row_uid]
    assert credited[copied.pk] == (original.pk, dora.pk)

    # A near-duplicate linked at ingestion credits the row it copies, even when that row was not retrieved.
    copied.near_duplicate_of = original
    copied.save(update_fields=["near_duplicate_of"])
    assert services.passage_shares([_result(copied)], [_result(copied)])[0] == {dora.pk: PPM}

    # Three cited passages: one part each (largest remainder), summed per account; moving a passage to another
    # account moves exactly its part.
    three = [_result(original), _result(guide), _result(Record.objects.filter(datanet=handbook, contributor=dora)
                                                        .exclude(pk=original.pk).first())]
    assert services.passage_shares(three, three)[0] == {dora.pk: 666_667, charlie.pk: 333_333}
    erin = make_user("erin")  # outside the cast: an account of no one in it, to move a passage to
    Record.objects.filter(pk=three[2].record_id).update(contributor=erin)
    assert services.passage_shares(three, three)[0] == {dora.pk: 333_334, charlie.pk: 333_333, erin.pk: 333_333}
