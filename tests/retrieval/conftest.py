"""Shared fixtures for the Documents Datanet and retrieval tests: a Documents Datanet made by the service, real
documents (`documents_support`), and uploads that go through the real services, with validation and index
builds run by the (eager) Celery tasks when the transaction's on-commit callbacks run."""

import pytest
from documents_support import HTML_PAGE, PDF_PAGES, text_pdf, training_docx, uploaded


@pytest.fixture
def documents():
    """{file name: bytes} of a real PDF (the planted fact on page 2), a Word document, a web page, and an
    encrypted PDF that cannot be read."""
    return {
        "coastal-energy.pdf": text_pdf(PDF_PAGES),
        "training.docx": training_docx(),
        "visitor-guide.html": HTML_PAGE,
        "locked.pdf": text_pdf([["A secret nobody may read."]], password="hunter2"),
    }


@pytest.fixture(autouse=True)
def _isolated_caches(settings, tmp_path):
    """The near-duplicate index and downloaded indexes are cached on disk per id; ids repeat between tests."""
    settings.DATANETS_CACHE_DIR = tmp_path / "datanets-cache"
    settings.RETRIEVAL_CACHE_DIR = tmp_path / "retrieval-cache"


@pytest.fixture
def documents_datanet(db):
    """`documents_datanet(owner, **overrides)`: a public Documents Datanet made by the service."""
    from datanets.services import datanet_create

    def make(owner, **overrides):
        options = {"name": "Coastal energy handbook", "task_type": "documents",
                   "summary": "Manuals and guides of the coastal energy sites."}
        options.update(overrides)
        return datanet_create(owner=owner, **options)

    return make


@pytest.fixture
def contribute_documents(django_capture_on_commit_callbacks):
    """`contribute_documents(datanet, user, {name: bytes})`: one contribution through the service, validated by
    the task on commit; returns it refreshed."""
    from datanets.services import contribution_create_from_documents

    def contribute(datanet, user, files):
        with django_capture_on_commit_callbacks(execute=True):
            contribution = contribution_create_from_documents(
                datanet=datanet, contributor=user, uploaded_files=[uploaded(n, d) for n, d in files.items()])
        contribution.refresh_from_db()
        return contribution

    return contribute


@pytest.fixture
def publish_all(django_capture_on_commit_callbacks):
    """`publish_all(datanet, curator, build=True)`: accept every pending passage and publish a version; with
    `build` the index build queued on commit runs (eagerly) before this returns."""
    from datanets.models import Record, RecordStatus
    from datanets.services import records_review, version_publish

    def publish(datanet, curator, build=True):
        pending = list(Record.objects.filter(datanet=datanet, status=RecordStatus.PENDING).values_list("pk", flat=True))
        if pending:
            records_review(datanet=datanet, reviewer=curator, record_ids=pending, decision="accept")
        with django_capture_on_commit_callbacks(execute=build):
            version = version_publish(datanet=datanet, actor=curator)
        return version

    return publish


@pytest.fixture
def indexed_handbook(documents_datanet, documents, contribute_documents, publish_all, cast_roles):
    """`indexed_handbook(owner, contributors={user: [document names]}, cast=False, **datanet options)`: a Documents
    Datanet of `owner` (the coastal energy handbook unless named otherwise; with `cast`, alice's, bob its curator and
    dora its contributor member) with the given documents contributed, every passage accepted, version 1 published
    and its search index built. Returns the version."""

    def make(owner, contributors, *, cast=False, **options):
        datanet = documents_datanet(owner, **options)
        if cast:
            cast_roles(datanet)
        for user, names in contributors.items():
            contribute_documents(datanet, user, {name: documents[name] for name in names})
        return publish_all(datanet, owner)

    return make
