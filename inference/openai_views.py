"""OpenAI-compatible API: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`.

Authenticate with `Authorization: Bearer <Lineage API key>` (a key with the `infer` scope; the
official `openai` clients send exactly that with `api_key=`), or a signed-in browser session plus
the CSRF token (the playground). `model` is a deployed model version's slug.

- A **classification** model answers a chat completion with its predicted label as the assistant
  message (`/v1/completions` likewise returns the label as the text); the `lineage` extension adds
  `classification: {label, probabilities}`. `usage.completion_tokens` is 0 for classifiers.
- Instruction-tuned models receive the last user message in the prompt format they were trained on;
  plain-text models receive the messages' text joined by newlines.
- `stream: true` answers with server-sent events in OpenAI's chunk format, ending `data: [DONE]`; the
  last chunk before it carries `finish_reason`, `usage` and `lineage`.
- Every answer carries `"lineage": {"inference_id", "receipt_id", "receipt_url", "fee",
  "model_version_hash", "receipt_status", "contributors", "top_rows"}` (`fee` in OPEN base units, as a
  string). Errors are `{"error": {"message", "type", "param", "code"}}`; a failed answer costs nothing.
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

from . import answering, services, validation
from .errors import OpenAIError


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


class ModelsView(OpenAIView):
    @extend_schema(tags=["openai"], responses=OpenApiTypes.OBJECT,
                   description="The deployed model versions, OpenAI's list shape; `id` is the slug to call.")
    def get(self, request):
        data = [
            {"id": v.slug, "object": "model", "created": int(v.created_at.timestamp()), "owned_by": str(v.owner),
             "lineage": {"task": v.task, "labels": v.label_names, "version_hash": v.version_hash,
                         "price_per_inference": str(v.price_per_inference), "base_model": v.base_model.slug}}
            for v in registry_selectors.deployed_model_versions().order_by("slug")
        ]
        return JsonResponse({"object": "list", "data": data})


class _CompletionView(OpenAIView):
    endpoint = ""
    object_name = ""
    chunk_object = ""

    @extend_schema(tags=["openai"], request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   description="OpenAI-compatible; see the module documentation of inference.openai_views.")
    def post(self, request):
        body = self.body(request)
        model = validation.model_name(body)
        stream = validation.stream_flag(body)
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
        response = StreamingHttpResponse(self.events(streamed, completion_id, created, model, request),
                                         content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response

    def events(self, streamed, completion_id, created, model, request):
        try:
            yield _sse(self.chunk(completion_id, created, model, None, first=True))
            for item in streamed:
                if item[0] == "delta":
                    yield _sse(self.chunk(completion_id, created, model, item[1]))
                elif item[0] == "error":
                    yield _sse(item[1].to_dict())
                    yield b"data: [DONE]\n\n"
                    return
                else:
                    _, answer, settled = item
                    last = self.chunk(completion_id, created, model, None, finish_reason=answer.finish_reason)
                    last["usage"] = _usage(answer)
                    last["lineage"] = _lineage(settled, answer, request)
                    yield _sse(last)
                    yield b"data: [DONE]\n\n"
        finally:
            streamed.close()


class ChatCompletionsView(_CompletionView):
    endpoint, id_prefix = "chat.completions", "chatcmpl"

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
    endpoint, id_prefix = "completions", "cmpl"

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
