"""Issue #19, items 1 and 2, through the REST API: one contributor uploads a real PDF, a Word document, a web page
and an encrypted PDF in one request; the three readable documents become passages in the review queue and the
locked one is one clear error; the curator accepts and publishes; the version's search index is built (the gpu
queue's task, eager here) and a fact planted on page 2 of the PDF is found first, with its contributor and page."""

import hashlib

import pytest
from django.core.files.storage import default_storage
from documents_support import PLANTED_FACT, uploaded

from accounts.models import AuditEvent
from datanets.models import ContributionState, Record, RecordStatus, RowError
from retrieval.models import IndexState, RetrievalIndex

pytestmark = pytest.mark.django_db


def squash(text):
    return " ".join(text.split())


def test_upload_review_publish_and_find_the_planted_fact(documents_datanet, documents, alice, dora, charlie,
                                                         key_client, django_capture_on_commit_callbacks):
    datanet = documents_datanet(alice)
    contributor = key_client(dora, "contribute", "read")
    with django_capture_on_commit_callbacks(execute=True):
        response = contributor.post(f"/api/v1/datanets/{datanet.slug}/contributions/",
                                    {"file": [uploaded(name, data) for name, data in documents.items()]},
                                    format="multipart")
    assert response.status_code == 202, response.json()
    status = contributor.get(response["Location"]).json()
    assert status["state"] == ContributionState.IN_REVIEW
    assert status["file_name"] == "4 documents.zip"

    # The three readable documents are passages waiting for review, each with its document and anchor.
    passages = list(Record.objects.filter(datanet=datanet).order_by("row_number"))
    assert {p.fields["document"] for p in passages} == {"coastal-energy.pdf", "training.docx", "visitor-guide.html"}
    assert all(p.status == RecordStatus.PENDING and p.contributor == dora for p in passages)
    pdf_anchors = [p.fields["anchor"] for p in passages if p.fields["document"] == "coastal-energy.pdf"]
    assert pdf_anchors == ["p. 1", "p. 2", "p. 3"]
    fact = next(p for p in passages if "Harrowgate" in p.fields["text"])
    assert (fact.fields["page"], fact.where) == ("2", "“coastal-energy.pdf”, p. 2")
    word = {p.fields["anchor"] for p in passages if p.fields["document"] == "training.docx"}
    assert word == {"Staff training › First aid", "Staff training › Radio procedure"}
    assert "Home | About" not in " ".join(p.fields["text"] for p in passages)  # page furniture dropped

    # The locked PDF is one error with the engine's code and message; nothing it held was stored.
    errors = contributor.get(status["errors_url"]).json()["results"]
    assert len(errors) == 1 and errors[0]["code"] == "encrypted_pdf"
    assert errors[0]["message"].startswith("“locked.pdf”: This PDF is protected by a password.")
    assert "upload it" in errors[0]["message"]
    assert status["counts"] == {"total": len(passages) + 1, "accepted": len(passages), "rejected": 1, "duplicate": 0,
                              "near_duplicate": 0}
    assert RowError.objects.get().where == "“locked.pdf”"

    # The curator accepts every passage and publishes; the index is built on commit.
    curator = key_client(alice, "contribute", "read")
    review = curator.post(f"/api/v1/datanets/{datanet.slug}/records/review/",
                          {"decision": "accept", "record_ids": [p.pk for p in passages]}, format="json")
    assert review.json() == {"changed": len(passages)}
    with django_capture_on_commit_callbacks(execute=True):
        published = curator.post(f"/api/v1/datanets/{datanet.slug}/versions/", {"notes": "first"}, format="json")
    assert published.status_code == 201
    index = RetrievalIndex.objects.get(version__datanet=datanet, version__number=1)
    assert (index.state, index.passage_count, index.error) == (IndexState.READY, len(passages), "")
    assert index.model_name == "sentence-transformers/all-MiniLM-L6-v2" and len(index.model_fingerprint) == 64
    assert index.build_seconds > 0 and index.size_bytes > 0 and index.device == "cpu"
    with default_storage.open(f"{index.storage_prefix}/manifest.json", "rb") as manifest:
        assert hashlib.sha256(manifest.read()).hexdigest() == index.index_hash
    assert list(AuditEvent.objects.filter(action__startswith="retrieval.").values_list("action", flat=True)
                .order_by("pk")) == ["retrieval.index_queue", "retrieval.index_build_start", "retrieval.index_ready"]

    # Anyone who may read the (public) Datanet searches it: the planted fact comes first, with where it is.
    reader = key_client(charlie, "read")
    search = reader.get(f"/api/v1/datanets/{datanet.slug}/versions/1/search/",
                        {"q": "How many homes does the Harrowgate turbine power?"})
    assert search.status_code == 200, search.json()
    body = search.json()
    assert (body["version"], body["mode"], body["k"], body["index_hash"]) == (1, "hybrid", 10, index.index_hash)
    top = body["results"][0]
    assert PLANTED_FACT in squash(top["text"])
    assert (top["document"], top["anchor"], top["page"], top["contributor"]) == ("coastal-energy.pdf", "p. 2", "2", "Dora")
    assert (top["rank"], top["record_id"], top["passage_id"]) == (1, fact.pk, f"r{fact.pk}")
    assert [r["rank"] for r in body["results"]] == list(range(1, len(passages) + 1))

    # Meaning alone (no shared content word) and exact words alone find their passages too.
    dense = reader.get(f"/api/v1/datanets/{datanet.slug}/versions/1/search/",
                       {"q": "what time does the museum shut", "mode": "dense", "k": 1}).json()["results"]
    assert len(dense) == 1 and dense[0]["document"] == "visitor-guide.html" and dense[0]["anchor"].endswith("Opening hours")
    lexical = reader.get(f"/api/v1/datanets/{datanet.slug}/versions/1/search/",
                         {"q": "channel 16", "mode": "lexical"}).json()["results"]
    assert lexical[0]["anchor"] == "Staff training › Radio procedure" and lexical[0]["lexical_score"] > 0
