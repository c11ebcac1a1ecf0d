"""Reads for retrieval: a version's search index, and searching it.

A dense or hybrid search embeds the query with the bundled MiniLM (on the model servers, or in this process
when none is configured: `query_embedding`), asks the version's opened index for its best passages (dense,
BM25 or both fused, `retrieval.engine.Searcher`) and names each passage's record: its text, document and
anchor, and its contributor's public name. Several versions are searched as one collection for a retrieval app
(`versions_search`); the apps themselves and their receipts are read here too."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.http import Http404

from datanets import selectors as datanet_selectors
from datanets.types import TaskType

from . import engine, loading, query_embedding
from .errors import IndexCorrupt, IndexNotReady, NotSearchable
from .models import AppState, IndexState, RetrievalApp, RetrievalIndex, RetrievalReceipt

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
    # Which version it was found in (a retrieval app searches several) and who contributed it.
    datanet: str = ""
    datanet_name: str = ""
    version_number: int = 0
    version_hash: str = ""
    contributor_id: int | None = None


def index_for(*, version) -> RetrievalIndex | None:
    return RetrievalIndex.objects.filter(version=version).first()


def searchable_index(*, version) -> RetrievalIndex:
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


def version_search(*, version, query: str, k: int = 10, mode: str = "hybrid") -> list[PassageResult]:
    """The `k` passages of the version that best answer `query`, best first. Raises `NotSearchable`,
    `IndexNotReady`, `IndexCorrupt` (stored files that no longer verify), `engine.RetrievalError`
    (`empty_query`, `model_mismatch`) or `QueryEmbeddingUnavailable` (the model server could not embed the
    query; lexical search never asks it)."""
    return versions_search(versions=[version], query=query, k=k, mode=mode)


def versions_search(*, versions: list, query: str, k: int = 10, mode: str = "hybrid",
                    query_vector=None) -> list[PassageResult]:
    """`version_search` over several versions searched as one collection (`engine.Searcher`): what a retrieval
    app retrieves from. An `IndexCorrupt` raised here names the failing index as `exc.index`. `query_vector`:
    the query's vector when the caller has it already."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    indexes = [searchable_index(version=version) for version in versions]
    opened = []
    for index in indexes:
        try:
            opened.append(loading.opened_index(index))
        except IndexCorrupt as exc:
            exc.index = index
            raise
    searcher = engine.Searcher(opened)
    if mode == "lexical":  # BM25 alone embeds nothing: no model is asked
        hits = searcher.search(query, k, mode=mode)
    else:
        if not query.strip():
            raise engine.RetrievalError("empty_query", "Type some words to search for.")
        if query_vector is None:
            query_vector = query_embedding.query_vector(query=query, index=opened[0])
        hits = searcher.search(query, k, mode=mode, query_vector=query_vector)
    version_of_index = {index.index_id: version for index, version in zip(opened, versions, strict=True)}
    pks = [int(hit.passage_id[1:]) for hit in hits]
    listed = datanet_selectors.version_record_pairs(versions=versions, record_ids=pks)
    by_pk = datanet_selectors.records_by_id(ids=pks)
    results, seen = [], set()
    for hit in hits:
        version, record = version_of_index[hit.index_id], by_pk.get(int(hit.passage_id[1:]))
        # A record the version no longer lists is never shown; one found in two versions is shown once.
        if record is None or (version.pk, record.pk) not in listed or record.pk in seen:
            continue
        seen.add(record.pk)
        fields = record.fields
        results.append(PassageResult(
            rank=len(results) + 1, score=float(hit.score), record_id=record.pk, passage_id=hit.passage_id,
            text=fields.get("text") or "", document=fields.get("document") or "", anchor=fields.get("anchor") or "",
            page=fields.get("page") or "", headings=fields.get("headings") or "",
            contributor=record.contributor.public_name, dense_score=hit.dense_score, lexical_score=hit.lexical_score,
            datanet=version.datanet.slug, datanet_name=version.datanet.name, version_number=version.number,
            version_hash=version.manifest_hash, contributor_id=record.contributor_id,
        ))
    return results


# --- Retrieval apps --------------------------------------------------------------------------------------

def deployed_apps():
    """Every retrieval app that answers now, whoever may ask it (`apps_callable_by` is what one user may ask)."""
    return RetrievalApp.objects.filter(state=AppState.ACTIVE).select_related("owner", "causal_model")


def _versions_hidden_from(*, user):
    """Versions of the Datanets the user may not read, by the Datanets' own rule (`datanets_visible_to`)."""
    return datanet_selectors.versions_hidden_from(user=user)


def apps_callable_by(*, user):
    """The deployed apps this user may ask, as `/v1/models`, the playground and the apps page list them: those
    whose every Datanet the user may read. An app over a private Datanet quotes and cites its passages, so to
    anyone else it does not exist (anonymous visitors: apps over public Datanets only)."""
    return deployed_apps().exclude(versions__in=_versions_hidden_from(user=user))


def app_for_model(*, slug: str, user) -> RetrievalApp | None:
    """The deployed retrieval app called `slug` (the `model` of a chat completion) that `user` may ask, or None
    (then `slug` is answered as a model version would be: most likely 404 `model_not_found`)."""
    if not isinstance(slug, str) or not slug:
        return None
    return apps_callable_by(user=user).filter(slug=slug).first()


def app_datanets_readable_by(*, app: RetrievalApp, user) -> bool:
    """Whether the user may read every Datanet behind the app (what asking it, and its citations, need)."""
    return not app.versions.filter(pk__in=_versions_hidden_from(user=user)).exists()


def apps_of(*, owner):
    return RetrievalApp.objects.filter(owner=owner).select_related("causal_model").order_by("state", "name")


def apps_listed_for(*, user):
    """What the apps API lists: every app the user may ask, and their own in any state."""
    callable_ids = apps_callable_by(user=user).values("pk")
    mine = Q(owner=user) if getattr(user, "is_authenticated", False) else Q(pk__in=[])
    return RetrievalApp.objects.filter(Q(pk__in=callable_ids) | mine).select_related("owner", "causal_model")


def app_get_visible(*, slug: str, user) -> RetrievalApp:
    """An app to its owner in any state; to anyone else a deployed app whose every Datanet they may read. A 404
    otherwise, so an app over a private Datanet does not reveal that it exists."""
    app = RetrievalApp.objects.select_related("owner", "causal_model").filter(slug=slug).first() if isinstance(
        slug, str) else None
    if app is not None and app.owner_id == getattr(user, "pk", None):
        return app
    if app is None or app.state != AppState.ACTIVE or not app_datanets_readable_by(app=app, user=user):
        raise Http404("No such retrieval app.")
    return app


def app_versions(*, app: RetrievalApp) -> list:
    return list(app.versions.select_related("datanet").order_by("datanet__name", "number"))


def app_versions_by_app(*, apps) -> dict[int, list]:
    out: dict[int, list] = {}
    for link in RetrievalApp.versions.through.objects.filter(retrievalapp__in=apps).select_related(
            "datanetversion__datanet").order_by("datanetversion__datanet__name", "datanetversion__number"):
        out.setdefault(link.retrievalapp_id, []).append(link.datanetversion)
    return out


def deployable_versions_for(*, user):
    """Published versions of the Documents Datanets the user may see: what the deploy form offers (whether each
    may be used, and its index is ready, the service says with its reasons)."""
    return datanet_selectors.versions_visible_to(user=user, task_type=TaskType.DOCUMENTS).select_related(
        "retrieval_index").order_by("datanet__name", "-number")


def receipt_by_id(*, receipt_id: str) -> RetrievalReceipt | None:
    """The receipt with this id, or None (attribution's receipt page sends a retrieval receipt's id here)."""
    return RetrievalReceipt.objects.filter(receipt_id=str(receipt_id)).first()


def receipt_get(*, receipt_id: str) -> RetrievalReceipt:
    """Like attribution receipts, a capability link: whoever holds the id may read which passages were cited."""
    receipt = RetrievalReceipt.objects.select_related("app", "app__owner").filter(receipt_id=str(receipt_id)).first()
    if receipt is None:
        raise Http404("No such receipt.")
    return receipt


def receipt_shows_query(*, receipt: RetrievalReceipt, user) -> bool:
    """The question and the answer are private to whoever asked, the app's owner and staff."""
    if not getattr(user, "is_authenticated", False):
        return False
    return user.is_staff or user.pk in (receipt.requester_id, receipt.app.owner_id)


# What a citation of a private Datanet shows to someone who may not read it: where it stands and what it scored.
_CITATION_KEYS_SHOWN_ALWAYS = ("number", "passage_id", "credited_row_id", "score")


def receipt_explained(*, receipt: RetrievalReceipt, user) -> dict:
    """The receipt's citations and its shares per contributor (percent of the contributors' pool), largest first.
    A citation of a Datanet the user may not read keeps only its number, row ids and score (no document, anchor,
    Datanet, contributor or text), and a contributor credited only for such passages is not named (unless it is
    the user)."""
    from accounts import selectors as accounts_selectors

    slugs = {c.get("datanet") for c in receipt.citations}
    visible = set(datanet_selectors.datanets_visible_to(user=user).filter(slug__in=slugs)
                  .values_list("slug", flat=True))
    citations, named = [], {getattr(user, "pk", None)}
    for citation in receipt.citations:
        if citation.get("datanet") in visible:
            citations.append({**citation, "visible": True})
            named.add(citation.get("credited_contributor_id"))
        else:
            citations.append({**{k: citation.get(k) for k in _CITATION_KEYS_SHOWN_ALWAYS}, "visible": False})
    shares = {int(k): int(v) for k, v in (receipt.contributor_shares_ppm or {}).items()}
    names = accounts_selectors.users_public_names(user_ids=[uid for uid in shares if uid in named])
    return {
        "citations": citations,
        "shares": [{"contributor_id": uid if uid in named else None,
                    "name": names.get(uid, f"user {uid}") if uid in named else "A contributor to a private Datanet",
                    "percent": round(ppm / 1e4, 2),
                    "rows": (receipt.contributor_rows or {}).get(str(uid), []) if uid in named else []}
                   for uid, ppm in sorted(shares.items(), key=lambda item: (-item[1], item[0]))],
    }


def version_named(*, user, datanet: str, number: int):
    """Version `number` of the Datanet with slug `datanet`, if the user may read that Datanet (an API request names
    versions so); None otherwise, whether it does not exist or is private."""
    return datanet_selectors.versions_visible_to(user=user).filter(datanet__slug=datanet, number=number).first()
