"""Retrieval apps on the OpenAI-compatible API: `POST /v1/chat/completions` with `model` set to an app's slug, and
the app's entry in `GET /v1/models`. `inference.openai_views` hands such requests here. An app is a model only to
those who may read every Datanet behind it (`selectors.apps_callable_by`): to anyone else an app over a private
Datanet is not listed and answers 404 `model_not_found`, as a model that does not exist.

The request is read and refused exactly as for a model version (`inference.validation`: the same messages,
sampling and unsupported-parameter rules); the question is the last user message (at most
`RETRIEVAL_MAX_QUERY_CHARS` characters). Sampling parameters matter only to an app with a causal model.

The answer is a chat completion whose `lineage` carries, besides the usual `inference_id`, `receipt_id`,
`receipt_url`, `fee`, `contributors` and `top_rows`: `citations` (footnote order: `number`, `passage_id`,
`record_id`, `document`, `anchor`, `datanet`, `datanet_version`, `version_hash`, `contributor`,
`credited_contributor` (the earliest accepted copy's contributor, who is paid), `score`, `quote`, `text`),
`answer_mode` (`extractive` or `generative`) and `retrieval_app`. With `stream: true` the answer comes as
server-sent events in OpenAI's chunk format (`services.StreamedAppAnswer`): a causal model's answer in its tokens'
text as they are generated, an extractive one (complete once retrieved) in one content chunk per word with the
spaces after it; then the chunk with `finish_reason` and `lineage` (the citations, the receipt and the fee, settled
once the answer is complete), the usage chunk when `stream_options.include_usage` asks for it, and
`data: [DONE]`. A stream that fails after it started ends with the error event and `[DONE]`, uncharged, as a
model's does. `/v1/completions` does not serve apps (400).
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse

from inference import services as inference_services
from inference import validation
from inference.errors import OpenAIError

from . import selectors, services

PRICE_UNIT = "OPEN base units (10^-18 OPEN)"
answer_pieces = services.answer_pieces  # how an answer complete before streaming is cut into chunks


def app_for_model(model, *, user) -> object | None:
    """The deployed retrieval app that answers as `model` to `user`, or None (then `model` names a model version).
    An app over a Datanet the user may not read is None: to them it does not exist (404 `model_not_found`)."""
    return selectors.app_for_model(slug=model, user=user) if isinstance(model, str) else None


def model_object(app) -> dict:
    """An app as `GET /v1/models` lists it (OpenAI's model object, with Lineage's extension)."""
    return {"id": app.slug, "object": "model", "created": int(app.created_at.timestamp()),
            "owned_by": app.owner.public_name,
            "lineage": {"task": app.task, "answer_mode": app.answer_mode, "version_hash": app.app_hash,
                        "price_per_inference": str(int(app.price_per_inference)), "price_unit": PRICE_UNIT,
                        "base_model": app.causal_model.slug if app.causal_model_id else None,
                        "datanet_versions": [f"{v.datanet.slug}@{v.number}"
                                             for v in selectors.app_versions(app=app)]}}


def _sse(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _lineage(app, answer, settled, request) -> dict:
    payload = settled.as_dict()
    payload["receipt_url"] = inference_services.receipt_url_absolute(settled.receipt_url, request)
    payload.update(citations=answer.citations, answer_mode=answer.mode, retrieval_app=app.slug)
    return payload


def chat_completion(*, view, request, body: dict, app):
    """Answer one chat completion with `app` (`view`: the OpenAI view that received it)."""
    if view.endpoint != "chat.completions":
        raise OpenAIError(f"'{app.slug}' is a retrieval app: it answers conversations on /v1/chat/completions.",
                          param="model", code="model_not_supported")
    model = validation.model_name(body)
    stream = validation.stream_flag(body)
    include_usage = validation.stream_include_usage(body, stream)
    validation.chat_unsupported(body)
    sampling = validation.sampling(body)
    messages = validation.messages(body)
    question = next(text for role, text in reversed(messages) if role == "user" and text.strip()).strip()
    if len(question) > settings.RETRIEVAL_MAX_QUERY_CHARS:
        raise OpenAIError(f"The question (the last user message) is {len(question)} characters; a retrieval app "
                          f"searches with at most {settings.RETRIEVAL_MAX_QUERY_CHARS}. Shorten it.",
                          param="messages", code="context_length_exceeded")
    inference = inference_services.inference_begin(
        user=request.user, api_key=view.api_key(request), endpoint=view.endpoint, model=model, stream=stream,
        resolve=lambda **_: app)
    created, completion_id = int(time.time()), f"chatcmpl-{inference.record.pk.hex}"
    if not stream:
        answer, settled = services.app_answer(inference=inference, app=app, messages=messages, sampling=sampling)
        return JsonResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": answer.finish_reason, "logprobs": None}],
            "usage": _usage(answer), "lineage": _lineage(app, answer, settled, request)})
    # Opening the stream retrieves (and opens the model's generation): its errors are a plain JSON answer.
    streamed = services.StreamedAppAnswer(inference=inference, app=app, messages=messages, sampling=sampling)

    def chunk(delta: dict, finish_reason=None) -> dict:
        item = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
        if include_usage:
            item["usage"] = None
        return item

    def events():
        try:
            yield _sse(chunk({"role": "assistant", "content": ""}))
            for item in streamed:
                if item[0] == "delta":
                    yield _sse(chunk({"content": item[1]}))
                elif item[0] == "error":
                    yield _sse(item[1].to_dict())
                    yield b"data: [DONE]\n\n"
                    return
                else:
                    _, answer, settled = item
                    yield _sse({**chunk({}, answer.finish_reason), "lineage": _lineage(app, answer, settled, request)})
                    if include_usage:
                        yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                    "model": model, "choices": [], "usage": _usage(answer)})
                    yield b"data: [DONE]\n\n"
        finally:
            streamed.close()

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _usage(answer) -> dict:
    return {"prompt_tokens": answer.tokens_in, "completion_tokens": answer.tokens_out,
            "total_tokens": answer.tokens_in + answer.tokens_out}
