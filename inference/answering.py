"""Running an answer on the model server for a request already admitted by `services.inference_begin`.

Shared by the OpenAI-compatible views and the native classification API: builds the prompt the
model was trained on, calls the model server, and turns its answer (or error) into what
`services.inference_complete` / `services.inference_fail` record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings

from . import services
from .client import ModelServerClient, ModelServerError, StreamDeadlineExceeded
from .errors import OpenAIError, from_model_server, stream_deadline_error
from .models import InferenceStatus

_local = threading.local()
logger = logging.getLogger("inference")


def server_client() -> ModelServerClient:
    """One keep-alive client per thread and server URL."""
    client = getattr(_local, "client", None)
    if client is None or client.base_url != settings.INFERENCE_SERVER_URL.rstrip("/"):
        client = ModelServerClient(settings.INFERENCE_SERVER_URL, timeout=settings.INFERENCE_TIMEOUT_S)
        _local.client = client
    return client


@dataclass(frozen=True)
class Prompt:
    text: str  # what the model server receives (when `messages` is None)
    # What the attribution receipt scores (the training row's input field); None: the prompt text the model
    # server rendered from `messages`.
    input_text: str | None
    # A chat history for a causal model: the model server renders it with the base tokenizer's chat template.
    messages: tuple[dict, ...] | None = None

    def server_input(self) -> dict:
        return {"messages": list(self.messages)} if self.messages is not None else {"prompt": self.text}

    def receipt_input(self, answer: Answer) -> str:
        if self.input_text is not None:
            return self.input_text
        return answer.prompt_text or self.text


# OpenAI's "developer" role is its newer name for "system", which chat templates know.
_TEMPLATE_ROLES = {"developer": "system"}


def chat_prompt(version, messages: list[tuple[str, str]]) -> Prompt:
    """What a chat completion's model is conditioned on.

    - Classifiers read the last user message (they label one text; earlier turns are not used).
    - Causal models (instruction and plain-text) get the whole history, every role, in order, rendered by
      the model server through the base tokenizer's chat template with the generation prompt
      (`apply_chat_template(messages, add_generation_prompt=True)`), or, when the tokenizer has no
      template, as one "role: content" line per message followed by "assistant:"
      (`inference.engine.chat`). `developer` messages are sent as `system`.

    The attribution receipt of an instruction model scores the last user message (its training rows are
    single instructions, which attribution puts in the training format itself); that of a plain-text model
    scores the rendered prompt.
    """
    last_user = next(text for role, text in reversed(messages) if role == "user" and text.strip())
    if services.is_classifier(version):
        return Prompt(last_user, last_user)
    history = tuple({"role": _TEMPLATE_ROLES.get(role, role), "content": text} for role, text in messages)
    return Prompt(last_user, last_user if version.task == "instruction" else None, messages=history)


@dataclass
class Answer:
    text: str
    finish_reason: str
    tokens_in: int
    tokens_out: int
    slot: int | None
    classification: dict | None = None
    prompt_text: str | None = None  # the prompt the model server rendered from a chat history


def _fail(inference, exc: ModelServerError | OpenAIError) -> OpenAIError:
    error = exc if isinstance(exc, OpenAIError) else from_model_server(exc)
    services.inference_fail(inference=inference, error=error)
    return error


def run(inference, prompt: Prompt, sampling=None) -> tuple[Answer, services.Settled]:
    """Blocking answer + receipt + fee. Raises `OpenAIError` (the request is then recorded as failed)."""
    version, client = inference.version, server_client()
    try:
        if services.is_classifier(version):
            result = client.classify(prompt.text, adapter=services.adapter_name(version))
            answer = Answer(text=result["label"], finish_reason="stop", tokens_in=result.get("input_tokens", 0),
                            tokens_out=0, slot=result.get("slot"),
                            classification={"label": result["label"], "probabilities": result["probabilities"]})
        else:
            result = client.generate(adapter=services.adapter_name(version), add_bos=True,
                                     **prompt.server_input(), **sampling.as_server_params())
            answer = Answer(text=result["text"], finish_reason=result["finish_reason"],
                            tokens_in=result["usage"]["prompt_tokens"], tokens_out=result["usage"]["completion_tokens"],
                            slot=result.get("slot"), prompt_text=result.get("prompt"))
    except ModelServerError as exc:
        raise _fail(inference, exc) from exc
    settled = services.inference_complete(inference=inference, input_text=prompt.receipt_input(answer),
                                          output=answer.text,
                                          tokens_in=answer.tokens_in, tokens_out=answer.tokens_out, slot=answer.slot)
    return answer, settled


class StreamedAnswer:
    """A streamed answer. Opening it (the constructor) reaches the model server, so request errors
    (context length, unloaded model) are raised before the HTTP response starts; iterating yields
    `("delta", text)` items and finally `("done", Answer, Settled)` or `("error", OpenAIError)`.

    If the consumer stops early (the client disconnected), `close()` cancels the generation on the
    model server, and the request is recorded as cancelled with no fee.

    The whole stream, from opening it, lasts at most `INFERENCE_STREAM_MAX_S`: past it the item is
    `("error", <502 model_server_timeout>)`, recorded as failed with no fee, as when the server falls silent."""

    def __init__(self, inference, prompt: Prompt, sampling=None) -> None:
        self.inference, self.prompt = inference, prompt
        self.limit_s = settings.INFERENCE_STREAM_MAX_S
        self._deadline = time.monotonic() + self.limit_s
        self.finished = False
        self._events = None
        self._classified = None
        version = inference.version
        try:
            if services.is_classifier(version):
                self._classified = server_client().classify(prompt.text, adapter=services.adapter_name(version))
            else:
                self._events = server_client().generate_stream(
                    adapter=services.adapter_name(version), add_bos=True, **prompt.server_input(),
                    **sampling.as_server_params())
        except ModelServerError as exc:
            self.finished = True
            raise _fail(inference, exc) from exc

    def __iter__(self) -> Iterator[tuple]:
        try:
            if self._classified is not None:
                result = self._classified
                answer = Answer(text=result["label"], finish_reason="stop", tokens_in=result.get("input_tokens", 0),
                                tokens_out=0, slot=result.get("slot"),
                                classification={"label": result["label"], "probabilities": result["probabilities"]})
                yield ("delta", answer.text)
            else:
                parts = []
                for delta in self._events.deltas(deadline=self._deadline):
                    parts.append(delta)
                    yield ("delta", delta)
                final = self._events.final
                usage = final.get("usage", {})
                answer = Answer(text=final.get("text", "".join(parts)), finish_reason=final.get("finish_reason", "stop"),
                                tokens_in=usage.get("prompt_tokens", 0), tokens_out=usage.get("completion_tokens", 0),
                                slot=final.get("slot"), prompt_text=final.get("prompt"))
        except StreamDeadlineExceeded as exc:
            logger.warning("stream cut at its deadline (%g s): %s", self.limit_s, exc.message)
            self.finished = True
            yield ("error", _fail(self.inference, stream_deadline_error(self.limit_s)))
            return
        except ModelServerError as exc:
            self.finished = True
            yield ("error", _fail(self.inference, exc))
            return
        try:
            settled = services.inference_complete(
                inference=self.inference, input_text=self.prompt.receipt_input(answer), output=answer.text,
                tokens_in=answer.tokens_in, tokens_out=answer.tokens_out, slot=answer.slot)
        except OpenAIError as exc:
            self.finished = True
            yield ("error", exc)
            return
        self.finished = True
        yield ("done", answer, settled)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        if not self.finished:
            self.finished = True
            services.inference_fail(
                inference=self.inference,
                error=OpenAIError("The client disconnected before the answer was complete; nothing was charged.",
                                  status=499, type="cancelled", code="client_disconnected"),
                status=InferenceStatus.CANCELLED)
