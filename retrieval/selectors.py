"""Reads for retrieval: a version's search index, and searching it.

A dense or hybrid search embeds the query with the bundled MiniLM (on the model servers, or in this process
when none is configured: `query_embedding`), asks the version's opened index for its best passages (dense,
BM25 or both fused, `retrieval.engine.Searcher`) and names each passage's record: its text, document and
anchor, and its contributor's public name."""

from __future__ import annotations

from dataclasses import dataclass

from datanets.models import DatanetVersion, Record, TaskType

from . import engine, loading, query_embedding
from .errors import IndexNotReady, NotSearchable
from .models import IndexState, RetrievalIndex

MODES = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class PassageResult:
    """One search result: the passage (a record of the version) and why it ranks where it does."""

    rank: int
    score: float
    record_id: int
    passage_id: str
    text: str
    document: str
    anchor: str
    page: str
    headings: str
    contributor: str
    dense_score: float | None
    lexical_score: float | None


def index_for(*, version: DatanetVersion) -> RetrievalIndex | None:
    return RetrievalIndex.objects.filter(version=version).first()


def searchable_index(*, version: DatanetVersion) -> RetrievalIndex:
    """The version's ready index, or why there is none: `NotSearchable` (not a Documents Datanet) or
    `IndexNotReady` with a code (`index_missing`, `index_building`, `index_failed`) and a message."""
    if version.datanet.task_type != TaskType.DOCUMENTS:
        raise NotSearchable(f"{version.datanet.name} holds rows, not documents: only the versions of a Documents "
                            "Datanet have a search index.")
    index = index_for(version=version)
    if index is None:
        raise IndexNotReady(f"v{version.number} has no search index; an admin can have it built.", code="index_missing")
    if index.state in (IndexState.QUEUED, IndexState.BUILDING):
        raise IndexNotReady(f"The search index of v{version.number} is being built ({index.get_state_display().lower()}"
                            "); search again in a minute.", code="index_building")
    if index.state == IndexState.FAILED:
        raise IndexNotReady(f"The search index of v{version.number} could not be built: {index.error} "
                            "An admin can queue the build again.", code="index_failed")
    return index


def version_search(*, version: DatanetVersion, query: str, k: int = 10, mode: str = "hybrid") -> list[PassageResult]:
    """The `k` passages of the version that best answer `query`, best first. Raises `NotSearchable`,
    `IndexNotReady`, `IndexCorrupt` (stored files that no longer verify), `engine.RetrievalError`
    (`empty_query`, `model_mismatch`) or `QueryEmbeddingUnavailable` (the model server could not embed the
    query; lexical search never asks it)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    index = searchable_index(version=version)
    opened = loading.opened_index(index)
    if mode == "lexical":  # BM25 alone embeds nothing: no model is asked
        hits = engine.Searcher([opened]).search(query, k, mode=mode)
    else:
        if not query.strip():
            raise engine.RetrievalError("empty_query", "Type some words to search for.")
        vector = query_embedding.query_vector(query=query, index=opened)
        hits = engine.Searcher([opened]).search(query, k, mode=mode, query_vector=vector)
    records = Record.objects.filter(versions=version, pk__in=[int(hit.passage_id[1:]) for hit in hits]).select_related(
        "contributor")
    by_uid = {record.row_uid: record for record in records}
    results = []
    for hit in hits:
        record = by_uid.get(hit.passage_id)
        if record is None:  # the index names a record the version no longer lists: never shown
            continue
        fields = record.fields
        results.append(PassageResult(
            rank=len(results) + 1, score=float(hit.score), record_id=record.pk, passage_id=hit.passage_id,
            text=fields.get("text") or "", document=fields.get("document") or "", anchor=fields.get("anchor") or "",
            page=fields.get("page") or "", headings=fields.get("headings") or "",
            contributor=record.contributor.public_name, dense_score=hit.dense_score, lexical_score=hit.lexical_score,
        ))
    return results
