"""Verbatim spans on receipts: a tiny Llama fine-tuned (by the real fine-tune job, whose registration builds the
attribution index eagerly) on lighthouse rows from two contributors. An answer that repeats a training row word
for word names that row and its contributor on the receipt and the receipt page; the span index is stored,
hashed and re-verified with the gradient index, and a tampered span file fails the index."""

from pathlib import Path

import pytest
import torch
from browser_support import assert_accessible, login
from django.core.files.storage import default_storage
from playwright.sync_api import expect

from attribution import services
from attribution.models import AttributionIndex, IndexState
from attribution.services.verbatim import SPANS_DIR
from datanets.models import Record

PLACES = ["Vardo", "Hanko", "Brora", "Lista", "Skagen", "Utsira", "Ouessant", "Fastnet", "Sumburgh", "Hoy"]
SHARED = "its keepers still ring the brass bell twice before every winter crossing of the northern reef."


def lighthouse_rows(places, first_year):
    return [{"prompt": f"Tell me about the lighthouse at {place}.",
             "response": f"The lighthouse at {place} was lit in {first_year + 7 * i}, and {SHARED}"}
            for i, place in enumerate(places)]


@pytest.fixture
def lighthouse_model(tmp_path, alice, bob, django_capture_on_commit_callbacks, settings):
    from datanets import services as datanet_services
    from models_registry import services as registry_services
    from models_registry.models import BaseModel
    from models_registry.training import build_tiny_causal_model, format_instruction_prompt

    torch.set_num_threads(1)
    settings.ATTRIBUTION_VERBATIM_MAX_ROWS = 3
    rows = {alice: lighthouse_rows(PLACES[:5], 1850), bob: lighthouse_rows(PLACES[5:], 1890)}
    corpus = [format_instruction_prompt(r["prompt"]) + r["response"] for group in rows.values() for r in group]
    path = build_tiny_causal_model(tmp_path / "tiny-llama", corpus, arch="llama", seed=0)
    base = BaseModel.objects.create(name="Tiny Llama", slug="tiny-llama", source_kind="path", source_ref=str(path),
                                    architecture="llama", task_types=["instruction", "text"])
    datanet = datanet_services.datanet_create(owner=alice, name="Lighthouses", task_type="instruction",
                                              visibility="public", label_set=[])
    for contributor, group in rows.items():
        with django_capture_on_commit_callbacks(execute=True):
            datanet_services.contribution_create_from_rows(datanet=datanet, contributor=contributor, rows=group)
    datanet_services.records_review(datanet=datanet, reviewer=alice,
                                    record_ids=datanet.records.values_list("pk", flat=True), decision="accept")
    version = datanet_services.version_publish(datanet=datanet, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        job = registry_services.fine_tune_create(owner=alice, name="lighthouses", base_model=base,
                                                 datanet_versions=[version], epochs=1, batch_size=8,
                                                 max_seq_length=64, eval_fraction=0.2)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    index = AttributionIndex.objects.get(model_version=job.model_version)
    assert index.state == IndexState.READY, index.error
    services.cache_clear()
    return job.model_version, index


def trained_record(index, contributor):
    """A row of `contributor` that the model trained on (the eval split is held out of the index)."""
    from attribution.engine.verbatim import SpanIndex

    trained = SpanIndex(Path(default_storage.path(f"{index.storage_prefix}/{SPANS_DIR}/verbatim.json")).parent).row_ids
    return next(r for r in Record.objects.filter(contributor=contributor).order_by("pk") if f"r{r.pk}" in trained)


def test_an_answer_repeating_a_training_row_names_the_row_and_contributor(lighthouse_model, alice, bob, client):
    model, index = lighthouse_model
    summary = index.method["verbatim"]
    assert summary["rows"] == index.row_count and summary["span_hash"]
    record = trained_record(index, alice)
    prompt, response = record.fields["prompt"], record.fields["response"]

    receipt = services.receipt_create(model_version=model, input_text=prompt, output=response, requester=alice)
    spans = receipt.payload["verbatim_spans"]
    assert receipt.payload["verbatim"] == {"span_hash": summary["span_hash"], "min_tokens": 8, "max_rows": 3,
                                           "span_royalty_bps": 0}
    # The whole answer is that one row's response (its place and year appear in no other row).
    assert [(s["start"], s["end"], s["text"], s["row_count"]) for s in spans] == [(0, len(response), response, 1)]
    assert spans[0]["rows"] == [{"row_id": f"r{record.pk}", "contributor_id": str(alice.pk), "row_token_start":
                                 spans[0]["rows"][0]["row_token_start"], "contributor_name": "Alice"}]
    assert spans[0]["rows"][0]["row_token_start"] > 0  # the response follows the row's prompt tokens

    # Shown to the requester with the repeated text marked, the row and the contributor.
    client.force_login(alice)
    page = client.get(receipt.get_absolute_url()).content.decode()
    assert f"<mark>{response}</mark>" in page and f"r{record.pk}" in page
    assert 'data-testid="verbatim-contributor">Alice<' in page
    # A stranger holding the link sees which row and whose, not the private answer.
    client.logout()
    page = client.get(receipt.get_absolute_url()).content.decode()
    assert f"r{record.pk}" in page and 'data-testid="verbatim-contributor">Alice<' in page
    assert response not in page and "<mark>" not in page

    # The receipt recomputes bit for bit, also after the contributor renames herself (names are not digested).
    assert services.receipt_verify(receipt=receipt).ok
    alice.display_name = "Alicia"
    alice.save(update_fields=["display_name"])
    assert services.receipt_verify(receipt=receipt).ok


def test_a_phrase_many_rows_share_lists_the_first_rows_and_counts_them_all(lighthouse_model, alice, bob, client):
    model, index = lighthouse_model
    output = f"Nobody remembers when, but {SHARED}"
    receipt = services.receipt_create(model_version=model, input_text="Tell me a story.", output=output,
                                      requester=bob)
    (span,) = receipt.payload["verbatim_spans"]
    assert span["text"] == SHARED and output[span["start"]:span["end"]] == SHARED
    assert span["row_count"] == index.row_count and span["occurrences"] == index.row_count
    assert len(span["rows"]) == 3 and {r["contributor_name"] for r in span["rows"]} <= {"Alice", "Bob"}

    novel = services.receipt_create(model_version=model, input_text="Tell me a story.",
                                    output="Zebras hum quietly under violet umbrellas.")
    assert novel.payload["verbatim_spans"] == []
    client.force_login(bob)
    assert "No part of this answer repeats a training row word for word" in client.get(
        novel.get_absolute_url()).content.decode()


def test_a_tampered_span_index_fails_the_index_and_computes_no_receipt(lighthouse_model, alice):
    model, index = lighthouse_model
    record = trained_record(index, alice)
    suffixes = Path(default_storage.path(f"{index.storage_prefix}/{SPANS_DIR}/suffixes.npy"))
    data = bytearray(suffixes.read_bytes())
    data[-1] ^= 0x01
    suffixes.write_bytes(bytes(data))

    with pytest.raises(services.IndexCorrupt, match="suffixes.npy: sha256 mismatch"):
        services.receipt_create(model_version=model, input_text=record.fields["prompt"],
                                output=record.fields["response"])
    with pytest.raises(services.IndexCorrupt, match="verbatim span index .* failed verification"):
        services.index_verify(model_version=model)
    index.refresh_from_db()
    assert index.state == IndexState.FAILED and "suffixes.npy" in index.error


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_receipt_page_marks_the_repeated_text_for_the_requester(lighthouse_model, alice, live_server, page):
    model, index = lighthouse_model
    record = trained_record(index, alice)
    response = record.fields["response"]
    receipt = services.receipt_create(model_version=model, input_text=record.fields["prompt"],
                                      output=f"{response} Anything else?", requester=alice)
    login(page, live_server, alice)
    page.goto(f"{live_server.url}{receipt.get_absolute_url()}")
    expect(page.get_by_test_id("verbatim-answer").locator("mark")).to_have_text(response)
    expect(page.get_by_test_id("verbatim-answer")).to_contain_text("Anything else?")
    expect(page.locator(f'#verbatim-spans tr[data-span-row="r{record.pk}"]')).to_contain_text("Alice")
    expect(page.get_by_test_id("verbatim-intro")).to_contain_text("1 part of this answer repeats training rows")
    assert_accessible(page)
