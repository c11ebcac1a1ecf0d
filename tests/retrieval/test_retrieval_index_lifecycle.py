"""The search index of a published version (issue #19, item 2): queued in the publishing transaction, built by
an idempotent task on the gpu queue, stored with its content hash, opened verified once per process and
memory-mapped, failed with a reason when the version's or its own files do not match, and queued again by staff."""

import re

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.storage import default_storage
from django.urls import reverse
from documents_support import HTML_PAGE, PDF_PAGES, text_pdf

from accounts.models import AuditEvent
from retrieval import loading, selectors
from retrieval.models import IndexState, RetrievalIndex
from retrieval.tasks import retrieval_index_build_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def handbook(documents_datanet, alice, dora, contribute_documents):
    datanet = documents_datanet(alice)
    contribute_documents(datanet, dora, {"coastal-energy.pdf": text_pdf(PDF_PAGES), "guide.html": HTML_PAGE})
    return datanet


def search_url(datanet, number=1):
    return f"/api/v1/datanets/{datanet.slug}/versions/{number}/search/"


def index_audit(index):
    return list(AuditEvent.objects.filter(action__startswith="retrieval.", object_id=str(index.pk))
                .values_list("action", flat=True).order_by("pk"))


def test_the_index_is_queued_with_the_version_and_searched_once_built(handbook, alice, publish_all, api_client):
    version = publish_all(handbook, alice, build=False)  # the build's task has not run yet
    index = RetrievalIndex.objects.get(version=version)
    assert (index.state, index.version_hash, index.storage_prefix) == (
        IndexState.QUEUED, version.manifest_hash, f"retrieval/{handbook.pk}/{version.manifest_hash}")
    waiting = api_client.get(search_url(handbook), {"q": "turbine"})
    assert waiting.status_code == 409 and waiting.json()["code"] == "index_building"
    assert "being built (queued)" in waiting.json()["detail"]
    page = api_client.get(reverse("datanets:version", args=[handbook.slug, 1])).content.decode()
    assert "The search index is being built (queued)" in page and 'hx-trigger="every 2s"' in page

    retrieval_index_build_task.delay(version.pk)
    index.refresh_from_db()
    assert index.state == IndexState.READY and index.attempts == 1
    answer = api_client.get(search_url(handbook), {"q": "Harrowgate turbine homes", "k": 2})
    assert answer.status_code == 200 and answer.json()["results"][0]["anchor"] == "p. 2"
    panel = api_client.get(reverse("retrieval:version_search", args=[handbook.slug, 1]), {"panel": 1}).content.decode()
    assert 'role="search"' in panel and "every 2s" not in panel  # ready: the panel stops polling

    # Delivered again (a broker redelivery): nothing is built twice.
    events = index_audit(index)
    retrieval_index_build_task.delay(version.pk)
    assert index_audit(index) == events and RetrievalIndex.objects.get(pk=index.pk).index_hash == index.index_hash


def test_a_build_whose_worker_died_is_built_again_to_the_same_index(handbook, alice, publish_all):
    version = publish_all(handbook, alice)
    index = RetrievalIndex.objects.get(version=version)
    built_hash = index.index_hash
    RetrievalIndex.objects.filter(pk=index.pk).update(state=IndexState.BUILDING)  # as a dead worker leaves it
    retrieval_index_build_task.delay(version.pk)
    index.refresh_from_db()
    # Same passages, same model, one insertion thread: the same bytes, so the same id.
    assert (index.state, index.attempts, index.index_hash) == (IndexState.READY, 2, built_hash)
    assert AuditEvent.objects.filter(action="retrieval.index_build_start", details__after_crash=True).count() == 1


def test_a_version_whose_files_were_altered_gets_no_index_and_staff_queue_it_again(
        handbook, alice, staff, publish_all, api_client, client, django_capture_on_commit_callbacks):
    version = publish_all(handbook, alice, build=False)
    data_name = f"{version.storage_prefix}/data.parquet"
    with default_storage.open(data_name, "rb") as original:
        pristine = original.read()
    with open(default_storage.path(data_name), "ab") as altered:
        altered.write(b"tampered")
    retrieval_index_build_task.delay(version.pk)
    index = RetrievalIndex.objects.get(version=version)
    assert index.state == IndexState.FAILED and "do not match its identity" in index.error
    refused = api_client.get(search_url(handbook), {"q": "turbine"})
    assert refused.status_code == 409 and refused.json()["code"] == "index_failed"
    assert "could not be built" in refused.json()["detail"] and "An admin can queue the build again" in refused.json()["detail"]

    with open(default_storage.path(data_name), "wb") as restored:
        restored.write(pristine)
    client.force_login(staff)
    changelist = reverse("admin:retrieval_retrievalindex_changelist")
    assert "do not match its identity" in client.get(changelist, {"q": handbook.slug}).content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the build is queued when the action commits
        client.post(changelist, {"action": "queue_again", ACTION_CHECKBOX_NAME: [index.pk]})
    index.refresh_from_db()
    assert (index.state, index.error, index.attempts) == (IndexState.READY, "", 1)
    assert AuditEvent.objects.filter(action="retrieval.index_requeue", actor=staff).count() == 1
    assert api_client.get(search_url(handbook), {"q": "turbine"}).status_code == 200


def test_index_files_that_no_longer_verify_are_never_searched(handbook, alice, publish_all, api_client):
    version = publish_all(handbook, alice)
    index = RetrievalIndex.objects.get(version=version)
    assert api_client.get(search_url(handbook), {"q": "turbine"}).status_code == 200  # opened and cached
    with open(default_storage.path(f"{index.storage_prefix}/dense.usearch"), "r+b") as graph:
        graph.seek(100)
        byte = graph.read(1)
        graph.seek(100)
        graph.write(bytes([byte[0] ^ 0xFF]))  # same size, other bytes: only the hash tells
    broken = api_client.get(search_url(handbook), {"q": "turbine"})
    assert broken.status_code == 503 and broken.json()["code"] == "index_unavailable"
    assert "dense.usearch does not match the sha256" in broken.json()["detail"]
    index.refresh_from_db()
    assert index.state == IndexState.FAILED and "failed verification" in index.error
    assert index_audit(index)[-1] == "retrieval.index_corrupt"
    assert api_client.get(search_url(handbook), {"q": "turbine"}).json()["code"] == "index_failed"


def test_opened_indexes_are_verified_once_and_kept_in_a_small_lru(handbook, alice, dora, publish_all, settings,
                                                                   contribute_documents):
    first = RetrievalIndex.objects.get(version=publish_all(handbook, alice))
    contribute_documents(handbook, dora, {"tides.md": b"# Tides\n\nNeap tides come at the quarter moons.\n"})
    second = RetrievalIndex.objects.get(version=publish_all(handbook, alice))
    assert first.index_hash != second.index_hash and second.passage_count == first.passage_count + 1
    loading.cache_clear()
    opened = loading.opened_index(first)
    assert loading.opened_index(first) is opened  # no second verification while the files are unchanged
    assert len(opened) == first.passage_count and opened.index_id == first.index_hash

    settings.RETRIEVAL_CACHE_INDEXES = 1
    loading.opened_index(second)
    assert loading.cached_index_hashes() == [second.index_hash]  # the least recently used one is gone
    reopened = loading.opened_index(first)
    assert reopened is not opened and loading.cached_index_hashes() == [first.index_hash]

    # Each version searches its own passages only.
    assert not [r for r in selectors.version_search(version=first.version, query="neap tides quarter moons", k=10)
                if r.document == "tides.md"]
    assert selectors.version_search(version=second.version, query="neap tides quarter moons", k=1)[0].document == "tides.md"


def test_a_documents_version_diff_lists_the_new_passages(handbook, alice, dora, publish_all, contribute_documents, client):
    publish_all(handbook, alice)
    contribute_documents(handbook, dora, {"tides.md": b"# Tides\n\nNeap tides come at the quarter moons.\n"})
    publish_all(handbook, alice)
    page = client.get(reverse("datanets:version_diff", args=[handbook.slug]), {"from": 1, "to": 2}).content.decode()
    assert "1 row added, 0 removed from v1 to v2" in re.sub(r"<[^>]+>", "", page)
    assert "Neap tides come at the quarter moons." in page


def test_the_retrieval_index_is_in_the_admin_and_its_task_goes_to_the_gpu_queue():
    from lineage.celery import app

    model_admin = admin.site._registry[RetrievalIndex]
    assert model_admin.search_fields and model_admin.list_filter and model_admin.list_display != ("__str__",)
    assert app.amqp.router.route({}, "retrieval.tasks.retrieval_index_build_task")["queue"].name == "gpu"
