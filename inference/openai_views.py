"""OpenAI-compatible API: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models` and
`GET /v1/models/{id}`.

Authenticate with `Authorization: Bearer <Lineage API key>` (a key with the `infer` scope; the
official `openai` clients send exactly that with `api_key=`), or a signed-in browser session plus
the CSRF token (the playground). `model` is a deployed model version's slug, or a deployed retrieval app's
(answered by `retrieval.chat`, which documents its `lineage.citations`).

- A **classification** model answers a chat completion with its predicted label as the assistant
  message, from the **last user message** only (earlier turns are not used; `/v1/completions` likewise
  returns the label as the text); the `lineage` extension adds `classification: {label, probabilities}`.
  `usage.completion_tokens` is 0 for classifiers.
- A **causal** model (instruction or plain-text) is conditioned on the **whole history**: every message,
  in order, rendered through its base tokenizer's chat template with the generation prompt
  (`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`); a tokenizer without a
  template gets one `role: content` line per message and a final `assistant:` line. `developer`
  messages count as `system`. `/v1/completions` sends `prompt` as it is.
- Sampling: `temperature`, `top_p`, `max_completion_tokens` (takes precedence over `max_tokens`), `stop`
  (a string or up to 4; the answer ends before the stop sequence, `finish_reason` "stop") and `seed`
  (the same seed and parameters give the same sampled answer). Parameters that are not implemented
  (`tools`, `tool_choice`, `response_format` other than `{"type": "text"}`, `logprobs`/`top_logprobs`,
  `n` > 1, penalties, `logit_bias`, ...) are refused with a 400 whose `error.param` names them, never
  ignored.
- `stream: true` answers with server-sent events in OpenAI's chunk format, ending `data: [DONE]`; the
  chunk with `finish_reason` carries `lineage`. With `stream_options: {"include_usage": true}` every
  chunk has `usage: null` and a last chunk with `choices: []` carries the `usage`; without it no usage
  is streamed.
- Every answer carries `"lineage": {"inference_id", "receipt_id", "receipt_url", "fee",
  "model_version_hash", "receipt_status", "contributors", "top_rows"}` (`fee` in OPEN base units, as a
  string; `GET /v1/models` gives `price_per_inference` in base units too, labelled by `price_unit`).
  Errors are `{"error": {"message", "type", "param", "code"}}`; a failed answer costs nothing. A model
  server that is down or did not answer in time is a 502 `upstream_error` (`model_server_unavailable` /
  `model_server_timeout`); in a stream that already started, the same error is the last event. Short
  credit is OpenAI's HTTP 429 with `type` and `code` `insufficient_quota` (and `x-should-retry: false`),
  whose message names the page where credit is added (`/rewards/deposit/`).
- `GET /v1/models/{id}` is one deployed model (the object `GET /v1/models` lists); any other id is a 404
  `model_not_found`.
"""

from __future__ import annotations

import json
import time

from django.http import JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.views import APIView

from accounts.models import ApiKey
from lineage.api import JSONParser
from models_registry import selectors as registry_selectors
from retrieval import chat as retrieval_chat
from retrieval import selectors as retrieval_selectors

from . import answering, selectors, services, validation
from .errors import OpenAIError

# Amounts in this API are exact integers of OPEN base units, sent as strings; people read OPEN elsewhere.
PRICE_UNIT = "OPEN base units (10^-18 OPEN)"


def _sse(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class OpenAIView(APIView):
    """DRF authentication, scopes and throttles; errors rendered in OpenAI's shape."""

    parser_classes = [JSONParser]
    required_scopes = {"GET": "infer", "POST": "infer"}

    def handle_exception(self, exc):
        if isinstance(exc, OpenAIError):
            return exc.response()
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            error = OpenAIError(str(exc.detail) if isinstance(exc, exceptions.AuthenticationFailed)
                                else "Send your Lineage API key as `Authorization: Bearer <key>`.",
                                status=401, code="invalid_api_key")
            response = error.response()
            response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        if isinstance(exc, exceptions.PermissionDenied):
            return OpenAIError(str(exc.detail), status=403, type="permission_error", code="missing_scope").response()
        if isinstance(exc, exceptions.Throttled):
            return OpenAIError(str(exc.detail), status=429, type="rate_limit_error", code="rate_limit_exceeded"
                               ).response()
        if isinstance(exc, exceptions.ParseError | exceptions.UnsupportedMediaType):
            return OpenAIError(f"The body must be a JSON object: {exc.detail}", status=400, code="invalid_json"
                               ).response()
        if isinstance(exc, exceptions.MethodNotAllowed):
            return OpenAIError(str(exc.detail), status=405, code="method_not_allowed").response()
        return super().handle_exception(exc)

    def body(self, request) -> dict:
        if not isinstance(request.data, dict):
            raise OpenAIError("The body must be a JSON object.", code="invalid_json")
        return request.data

    @staticmethod
    def api_key(request):
        return request.auth if isinstance(request.auth, ApiKey) else None


def _model_object(v) -> dict:
    return {"id": v.slug, "object": "model", "created": int(v.created_at.timestamp()), "owned_by": v.owner.public_name,
            "lineage": {"task": v.task, "labels": v.label_names, "version_hash": v.version_hash,
                        "price_per_inference": str(v.price_per_inference), "price_unit": PRICE_UNIT,
                        "base_model": v.base_model.slug}}


class ModelsView(OpenAIView):
    @extend_schema(tags=["openai"], responses=OpenApiTypes.OBJECT, operation_id="v1_models_list",
                   description="The deployed model versions, then the retrieval apps, OpenAI's list shape; `id` is the "
                               "slug to call. "
                               "`lineage.price_per_inference` is in OPEN base units (1 OPEN = 10^18), as a string.")
    def get(self, request):
        data = [_model_object(v) for v in registry_selectors.deployed_model_versions().order_by("slug")]
        # Only the apps this caller may ask: one over a private Datanet is listed to its readers alone.
        data += [retrieval_chat.model_object(app)
                 for app in retrieval_selectors.apps_callable_by(user=request.user).order_by("slug")]
        return JsonResponse({"object": "list", "data": data})


class ModelView(OpenAIView):
    @extend_schema(tags=["openai"], responses=OpenApiTypes.OBJECT, operation_id="v1_models_retrieve",
                   description="One deployed model version (OpenAI's model object, as `GET /v1/models` lists it); "
                               "any other id answers 404 `model_not_found`.")
    def get(self, request, model_id: str):
        version = selectors.deployed_model(slug=model_id)
        app = retrieval_chat.app_for_model(model_id, user=request.user) if version is None else None
        if app is not None:
            return JsonResponse(retrieval_chat.model_object(app))
        if version is None:
            raise OpenAIError(f"The model '{model_id}' does not exist or is not deployed. GET /v1/models lists the "
                              "deployed models.", status=404, param="model", code="model_not_found")
        return JsonResponse(_model_object(version))


class _CompletionView(OpenAIView):
    endpoint = ""
    object_name = ""
    chunk_object = ""

    @extend_schema(tags=["openai"], request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   description="OpenAI-compatible; see the module documentation of inference.openai_views.")
    def post(self, request):
        body = self.body(request)
        model = validation.model_name(body)
        # A retrieval app answers under its own model name (to those who may read its Datanets).
        app = retrieval_chat.app_for_model(model, user=request.user)
        if app is not None:
            return retrieval_chat.chat_completion(view=self, request=request, body=body, app=app)
        stream = validation.stream_flag(body)
        include_usage = validation.stream_include_usage(body, stream)
        self.refuse_unsupported(body)
        sampling = validation.sampling(body)
        inputs = self.read_input(body)
        inference = services.inference_begin(user=request.user, api_key=self.api_key(request),
                                             endpoint=self.endpoint, model=model, stream=stream)
        prompt = self.prompt(inference.version, inputs)
        created, completion_id = int(time.time()), f"{self.id_prefix}-{inference.record.pk.hex}"
        if not stream:
            answer, settled = answering.run(inference, prompt, sampling)
            payload = self.completion(completion_id, created, model, answer)
            payload["usage"] = _usage(answer)
            payload["lineage"] = _lineage(settled, answer, request)
            return JsonResponse(payload)
        streamed = answering.StreamedAnswer(inference, prompt, sampling)
        response = StreamingHttpResponse(self.events(streamed, completion_id, created, model, request, include_usage),
                                         content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response

    def events(self, streamed, completion_id, created, model, request, include_usage=False):
        def frame(chunk: dict) -> bytes:
            if include_usage:
                chunk.setdefault("usage", None)  # as OpenAI: null on every chunk but the usage chunk
            return _sse(chunk)

        try:
            yield frame(self.chunk(completion_id, created, model, None, first=True))
            for item in streamed:
                if item[0] == "delta":
                    yield frame(self.chunk(completion_id, created, model, item[1]))
                elif item[0] == "error":
                    yield _sse(item[1].to_dict())
                    yield b"data: [DONE]\n\n"
                    return
                else:
                    _, answer, settled = item
                    last = self.chunk(completion_id, created, model, None, finish_reason=answer.finish_reason)
                    last["lineage"] = _lineage(settled, answer, request)
                    yield frame(last)
                    if include_usage:
                        yield frame({"id": completion_id, "object": self.chunk_object, "created": created,
                                     "model": model, "choices": [], "usage": _usage(answer)})
                    yield b"data: [DONE]\n\n"
        finally:
            streamed.close()


class ChatCompletionsView(_CompletionView):
    """`POST /v1/chat/completions`. Classifiers answer the last user message; causal models are conditioned
    on the whole history through the base tokenizer's chat template (plain `role: content` lines without
    one); see the module documentation."""

    endpoint, id_prefix, chunk_object = "chat.completions", "chatcmpl", "chat.completion.chunk"

    def refuse_unsupported(self, body):
        validation.chat_unsupported(body)

    def read_input(self, body):
        return validation.messages(body)

    def prompt(self, version, messages):
        return answering.chat_prompt(version, messages)

    def completion(self, completion_id, created, model, answer):
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": answer.finish_reason, "logprobs": None}]}

    def chunk(self, completion_id, created, model, text, *, first=False, finish_reason=None):
        delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text is not None else {})
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}


class CompletionsView(_CompletionView):
    endpoint, id_prefix, chunk_object = "completions", "cmpl", "text_completion"

    def refuse_unsupported(self, body):
        validation.completions_unsupported(body)

    def read_input(self, body):
        return validation.prompt(body)

    def prompt(self, version, text):
        return answering.Prompt(text, text)

    def completion(self, completion_id, created, model, answer):
        return {"id": completion_id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": answer.text, "finish_reason": answer.finish_reason, "logprobs": None}]}

    def chunk(self, completion_id, created, model, text, *, first=False, finish_reason=None):
        return {"id": completion_id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": text or "", "finish_reason": finish_reason, "logprobs": None}]}


def _usage(answer) -> dict:
    return {"prompt_tokens": answer.tokens_in, "completion_tokens": answer.tokens_out,
            "total_tokens": answer.tokens_in + answer.tokens_out}


def _lineage(settled, answer, request) -> dict:
    payload = settled.as_dict()
    payload["receipt_url"] = services.receipt_url_absolute(settled.receipt_url, request)
    if answer.classification is not None:
        payload["classification"] = answer.classification
    return payload
