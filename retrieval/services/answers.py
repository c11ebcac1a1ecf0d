"""A retrieval app's answer to a chat completion: retrieve, answer, cite, and settle the fee by the citations.

1. **Retrieve.** The last user message is the question. The app's versions are searched as one collection
   (hybrid: MiniLM embeddings and BM25 fused by rank, `selectors.versions_search`) for `app.passages` passages,
   plus as many again to recognise exact copies (below).
2. **Answer.** With a causal model, it writes the answer (on the model servers, through the same client and
   error mapping as any chat completion: `inference.answering`), conditioned on the conversation whose last user
   turn lists the passages as [1], [2], … before the question; every passage it was given is cited. Without one
   the answer is extractive: the best passage's most relevant sentence (`engine.quotes`), quoted, with [1]; that
   passage alone is cited.
3. **Credit (partition-invariant, first come).** Each cited passage carries an equal part of the contributors'
   pool (largest remainder over the passages, in citation order, summing to 1,000,000 ppm); a contributor
   receives the sum of their passages' parts, so spreading passages over accounts, or merging accounts, changes
   nothing. A passage's part goes to the contributor of the **earliest accepted copy** of it (smallest row id,
   upload order, as attribution does): copies are the near-duplicates ingestion linked (`near_duplicate_of`,
   followed to the root) and passages with the same text found in another version of the app.
4. **Settle.** One transaction: the `RetrievalReceipt` (cited passages, shares, digest), the fee held on the
   payer's credit with those shares (`rewards.services.fee_record`, the path every fee takes, booked by the next
   batch) and the inference record (`inference.services.inference_complete_settled`). Short credit refuses the
   answer and charges nothing; an answer that found no passage cites nothing and is free.

`answer` does all four; a streamed answer (`streaming.StreamedAppAnswer`) runs `answer_retrieve`, streams the
causal model's tokens as they come, and runs `answer_settle` once the answer is complete.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.urls import reverse

from accounts import selectors as accounts_selectors
from datanets import selectors as datanet_selectors
from datanets.types import RecordStatus
from inference import answering, integrations
from inference import services as inference_services
from inference.client import ModelServerError
from inference.errors import OpenAIError, from_model_server
from rewards import services as rewards_services

from .. import engine, loading, query_embedding, selectors
from ..engine import quotes
from ..engine.store import canonical_json
from ..errors import IndexCorrupt, IndexNotReady, NotSearchable, QueryEmbeddingUnavailable
from ..models import RetrievalReceipt
from .builds import index_fail_corrupt

PPM = rewards_services.PPM
CREDIT_RULE = ("equal part per cited passage (largest remainder, citation order); a passage's part goes to the "
               "contributor of its earliest accepted copy; a contributor receives the sum of their passages' parts")
NOTHING_FOUND = "No passage of this app's Datanets answers that."
GENERATION_PROMPT = ("Answer the question using only the numbered passages below, and cite the passages you use "
                     "as [1], [2]. If they do not contain the answer, say so.\n\n")
_TEMPLATE_ROLES = {"developer": "system"}
_MAX_LINKS = 20  # near-duplicate links followed from one passage (chains are short: each links to its root)


@dataclass
class RetrievalAnswer:
    text: str
    finish_reason: str
    mode: str  # "extractive" or "generative"
    tokens_in: int = 0
    tokens_out: int = 0
    citations: list[dict] = field(default_factory=list)


def _failed(inference, error: OpenAIError) -> OpenAIError:
    inference_services.inference_fail(inference=inference, error=error)
    return error


def _unavailable(message: str, code: str, status: int = 503) -> OpenAIError:
    return OpenAIError(message, status=status, type="upstream_error" if status >= 502 else "invalid_request_error",
                       code=code)


def _opened_first(versions):
    index = selectors.searchable_index(version=versions[0])
    try:
        return loading.opened_index(index)
    except IndexCorrupt as exc:
        exc.index = index
        raise


def _retrieve(app, query: str, asker):
    """(retrieved passages best first, the query's vector, an opened index of the app's embedding model)."""
    # The API lets only those who may read every Datanet of the app ask it; checked again here, next to the
    # search, because the answer quotes and cites the passages (a membership may have ended in between).
    if not selectors.app_datanets_readable_by(app=app, user=asker):
        raise OpenAIError(f"The model '{app.slug}' does not exist or is not deployed. GET /v1/models lists the "
                          "deployed models.", status=404, param="model", code="model_not_found")
    versions = selectors.app_versions(app=app)
    opened = _opened_first(versions)
    vector = query_embedding.query_vector(query=query, index=opened)
    depth = min(settings.RETRIEVAL_MAX_K, 2 * app.passages)
    results = selectors.versions_search(versions=versions, query=query, k=max(depth, app.passages), mode="hybrid",
                                        query_vector=vector)
    return results, vector, opened


def _extract(best, vector, opened) -> str:
    sentences = quotes.split_sentences(best.text)
    if not sentences:
        return best.text.strip()
    pool = quotes.candidates(sentences)
    if len(pool) == 1:
        return sentences[pool[0]]
    vectors = query_embedding.text_vectors(texts=[sentences[i] for i in pool], index=opened)
    return sentences[pool[quotes.best_sentence([sentences[i] for i in pool], vectors, vector)]]


def generation_request(app, cited, messages) -> dict:
    """What the model servers' `/v1/generate` gets (less the sampling): the app's causal model's adapter and the
    conversation whose last user turn lists the cited passages before the question. Raises `OpenAIError` (503)
    when that model is no longer deployed."""
    model = app.causal_model
    if not model.deployed:
        raise _unavailable(f"The app's model {model.name} is no longer deployed; its owner has to deploy it again.",
                           "model_not_deployed")
    context = "\n\n".join(f"[{n}] {r.document}{', ' + r.anchor if r.anchor else ''}: {r.text}"
                          for n, r in enumerate(cited, 1))
    # The passages go into the last user turn, not a system message: every chat template renders user turns
    # (some drop system messages), and so does the plain "role: content" rendering of a tokenizer without one.
    last = max(i for i, (role, text) in enumerate(messages) if role == "user" and text.strip())
    history = [{"role": _TEMPLATE_ROLES.get(role, role), "content": text} for role, text in messages]
    question = messages[last][1].strip()
    history[last] = {"role": "user", "content": f"{GENERATION_PROMPT}{context}\n\nQuestion: {question}"}
    return {"adapter": inference_services.adapter_name(model), "add_bos": True, "messages": history}


def _generate(app, cited, messages, sampling) -> dict:
    request = generation_request(app, cited, messages)
    try:
        return answering.server_client().generate(**request, **sampling.as_server_params())
    except ModelServerError as exc:
        raise from_model_server(exc) from exc


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


def _earliest_copies(cited, retrieved) -> dict[int, tuple[int, int]]:
    """{cited record id: (row id of its earliest accepted copy, that row's contributor)}."""
    same_text: dict[str, set[int]] = {}
    for result in retrieved:
        same_text.setdefault(_normalised(result.text), set()).add(result.record_id)
    groups = {r.record_id: set(same_text[_normalised(r.text)]) | {r.record_id} for r in cited}
    rows: dict[int, tuple] = {}  # row id: (the row it copies, status, contributor)
    frontier = set().union(*groups.values())
    for _ in range(_MAX_LINKS):
        frontier -= rows.keys()
        if not frontier:
            break
        for pk, copies, status, contributor in datanet_selectors.record_copy_links(ids=frontier):
            rows[pk] = (copies, status, contributor)
        frontier = {copies for copies, _, _ in rows.values() if copies is not None}
    out = {}
    for pk, group in groups.items():
        members, frontier = set(), set(group)
        while frontier:  # each row and the rows it was found to copy, up the near-duplicate links
            members |= frontier
            frontier = {rows[m][0] for m in frontier if m in rows and rows[m][0] is not None} - members
        accepted = [m for m in members if m in rows and rows[m][1] == RecordStatus.ACCEPTED]
        root = min(accepted) if accepted else pk
        out[pk] = (root, rows[root][2])
    return out


def passage_shares(cited, retrieved) -> tuple[dict[int, int], dict[int, list[str]], dict[int, tuple[int, int]]]:
    """({contributor id: ppm}, {contributor id: [credited row ids]}, {cited record id: (credited row, contributor)})
    by the credit rule of the module documentation. Empty when nothing is cited."""
    if not cited:
        return {}, {}, {}
    credited = _earliest_copies(cited, retrieved)
    parts = rewards_services.largest_remainder(PPM, [(n, 1) for n in range(len(cited))])
    shares: dict[int, int] = {}
    rows: dict[int, list[str]] = {}
    for n, result in enumerate(cited):
        root, contributor = credited[result.record_id]
        shares[contributor] = shares.get(contributor, 0) + parts[n]
        rows.setdefault(contributor, []).append(f"r{root}")
    return shares, rows, credited


def _citations(cited, credited, quote: str | None) -> list[dict]:
    names = accounts_selectors.users_public_names(user_ids={c for _, c in credited.values()})
    out = []
    for n, r in enumerate(cited, 1):
        root, contributor = credited[r.record_id]
        out.append({
            "number": n, "passage_id": r.passage_id, "record_id": r.record_id, "document": r.document,
            "anchor": r.anchor, "datanet": r.datanet, "datanet_name": r.datanet_name,
            "datanet_version": r.version_number, "version_hash": r.version_hash, "contributor": r.contributor,
            "contributor_id": r.contributor_id, "credited_row_id": f"r{root}", "credited_contributor_id": contributor,
            "credited_contributor": names.get(contributor, f"user {contributor}"), "score": round(r.score, 6),
            "quote": quote if quote is not None and n == 1 else "", "text": r.text[:500],
        })
    return out


def _settler(*, app, query: str, answer: RetrievalAnswer, shares: dict, rows: dict):
    def settle(inference) -> inference_services.Settled:
        record = inference.record
        fee = inference.fee if answer.citations else 0
        digest = integrations.query_digest(query, answer.text)
        payload = {"kind": "retrieval", "app": app.slug, "app_hash": app.app_hash,
                   "inference_id": inference.inference_id, "query_digest": digest, "answer_mode": answer.mode,
                   "citations": answer.citations, "shares_ppm": {str(k): v for k, v in sorted(shares.items())},
                   "rows": {str(k): v for k, v in sorted(rows.items())}, "rule": CREDIT_RULE}
        receipt = RetrievalReceipt.objects.create(
            app=app, app_hash=app.app_hash, inference_id=inference.inference_id, requester=record.user,
            input_text=query, output=answer.text, query_digest=digest, answer_mode=answer.mode,
            citations=answer.citations, contributor_shares_ppm=payload["shares_ppm"],
            contributor_rows=payload["rows"], payload=payload,
            receipt_digest=hashlib.sha256(canonical_json(payload)).hexdigest())
        if fee > 0:
            try:
                rewards_services.fee_record(
                    inference_id=inference.inference_id, payer=record.user, model_owner=app.owner, fee=fee,
                    contributor_shares=shares, model_version_hash=app.app_hash, receipt_id=receipt.receipt_id,
                    contributor_rows=rows)
            except rewards_services.InsufficientCredit as exc:
                raise integrations.CreditShort(str(exc), needed=exc.needed, available=exc.available) from exc
        names = accounts_selectors.users_public_names(user_ids=list(shares))
        return inference_services.Settled(
            inference_id=inference.inference_id, receipt_id=receipt.receipt_id,
            receipt_url=reverse("retrieval_apps:receipt", args=[receipt.receipt_id]), fee=fee,
            model_version_hash=app.app_hash, receipt_status="ready",
            contributors=[{"user_id": uid, "name": names.get(uid, f"user {uid}"), "share_ppm": ppm,
                           "rows": rows.get(uid, [])[:10]}
                          for uid, ppm in sorted(shares.items(), key=lambda item: (-item[1], item[0]))],
            top_rows=[{"row_id": c["credited_row_id"], "contributor_id": c["credited_contributor_id"],
                       "score": c["score"]} for c in answer.citations],
        )

    return settle


@dataclass
class Retrieved:
    """A question's passages, and its answer when no model has to write it (`result` None: the causal model does,
    from `cited`)."""

    query: str
    retrieved: list
    cited: list
    quote: str | None = None
    result: RetrievalAnswer | None = None


@contextmanager
def failures_recorded(inference):
    """Turn what retrieving or answering raises into the `OpenAIError` the caller gets, the request recorded as
    failed (nothing charged); an index whose files no longer verify is marked for a rebuild."""
    try:
        yield
    except OpenAIError as exc:
        raise _failed(inference, exc) from exc
    except IndexCorrupt as exc:
        if getattr(exc, "index", None) is not None:
            index_fail_corrupt(index=exc.index, reason=str(exc))
        raise _failed(inference, _unavailable(f"{exc} The app answers again once it is rebuilt.",
                                              "index_unavailable")) from exc
    except IndexNotReady as exc:
        raise _failed(inference, _unavailable(f"This app cannot search now: {exc.message}", exc.code)) from exc
    except NotSearchable as exc:
        raise _failed(inference, _unavailable(str(exc), "not_searchable")) from exc
    except QueryEmbeddingUnavailable as exc:
        raise _failed(inference, _unavailable(exc.message, exc.code, exc.status)) from exc
    except engine.RetrievalError as exc:
        raise _failed(inference, OpenAIError(exc.message, param="messages", code=exc.code)) from exc


def answer_retrieve(*, inference, app, messages: list[tuple[str, str]]) -> Retrieved:
    """Steps 1 and 2 of the module documentation, all but a causal model's writing (then `result` is None). Raises
    `OpenAIError` (the request is then recorded as failed and costs nothing)."""
    query = next(text for role, text in reversed(messages) if role == "user" and text.strip()).strip()
    with failures_recorded(inference):
        retrieved, vector, opened = _retrieve(app, query, inference.record.user)
        if not retrieved:
            return Retrieved(query, [], [], result=RetrievalAnswer(NOTHING_FOUND, "stop", app.answer_mode))
        if app.causal_model_id is None:
            quote = _extract(retrieved[0], vector, opened)
            return Retrieved(query, retrieved, retrieved[:1], quote,
                             RetrievalAnswer(f"“{quote}” [1]", "stop", "extractive"))
        return Retrieved(query, retrieved, retrieved[:app.passages])


def answer_settle(*, inference, app, found: Retrieved, result: RetrievalAnswer):
    """Steps 3 and 4: cite, split the contributors' part, and record the answer, its receipt and its fee in one
    transaction. Raises `OpenAIError` (429) when the credit ran short meanwhile: nothing is charged."""
    shares, rows, credited = passage_shares(found.cited, found.retrieved)
    result.citations = _citations(found.cited, credited, found.quote)
    return inference_services.inference_complete_settled(
        inference=inference, input_text=found.query, output=result.text, tokens_in=result.tokens_in,
        tokens_out=result.tokens_out, settle=_settler(app=app, query=found.query, answer=result, shares=shares,
                                                      rows=rows))


def answer(*, inference, app, messages: list[tuple[str, str]], sampling) -> tuple[RetrievalAnswer, object]:
    """Answer `messages` with `app` for an admitted request (`inference.services.inference_begin`), record it and
    settle its fee. Raises `OpenAIError`; the request is then recorded as failed and costs nothing."""
    found = answer_retrieve(inference=inference, app=app, messages=messages)
    result = found.result
    if result is None:
        with failures_recorded(inference):
            generated = _generate(app, found.cited, messages, sampling)
        usage = generated.get("usage") or {}
        result = RetrievalAnswer(generated["text"], generated.get("finish_reason", "stop"), "generative",
                                 int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
    return result, answer_settle(inference=inference, app=app, found=found, result=result)
