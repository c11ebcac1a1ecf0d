"""A retrieval app's streamed answer (`stream: true` on `/v1/chat/completions`), as `inference.answering`'s
`StreamedAnswer` streams a model's.

Opening it (the constructor) retrieves the passages and, for a causal model, opens its generation on the model
servers: whatever fails there (no index, a model no longer deployed, a server down) is raised before the HTTP
response starts, and the request is recorded as failed. Iterating it yields `("delta", text)` items and finally
`("done", RetrievalAnswer, Settled)` or `("error", OpenAIError)`:

- **Generative** (the app's causal model writes the answer): each delta is the model's as it is generated. Once
  the answer is complete, its receipt, citations and fee are settled in one transaction (`answers.answer_settle`);
  a failure before that (the server stalls or dies, the stream passes `INFERENCE_STREAM_MAX_S`, the credit ran
  short meanwhile) is the `error` item, the request is recorded as failed, no receipt is written and nothing is
  charged.
- **Extractive, or nothing found**: the answer is complete once retrieved, so it is settled before the first byte
  (short credit is then the plain 429) and streamed one word per delta (`answer_pieces`).

`close()` (the consumer stopped: the client disconnected) cancels the generation on the model server and records a
request that had not finished as cancelled, with no fee.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

from django.conf import settings

from inference import answering
from inference import services as inference_services
from inference.client import ModelServerError, StreamDeadlineExceeded
from inference.errors import OpenAIError, from_model_server, stream_deadline_error
from inference.types import InferenceStatus

from .answers import RetrievalAnswer, answer_retrieve, answer_settle, failures_recorded, generation_request

logger = logging.getLogger("retrieval")
_PIECE = re.compile(r"\s+(?=\S)|\S+\s*|\s+$")


def answer_pieces(text: str) -> list[str]:
    """An answer that is complete before it is streamed, cut for streaming: one piece per word with the spaces
    after it (leading spaces alone first), so the pieces joined are the answer exactly."""
    return _PIECE.findall(text) or [text]


class StreamedAppAnswer:
    """See the module documentation. `inference`: the admitted request (`inference.services.inference_begin`)."""

    def __init__(self, *, inference, app, messages: list[tuple[str, str]], sampling) -> None:
        self.inference, self.app = inference, app
        self.limit_s = settings.INFERENCE_STREAM_MAX_S
        self._deadline = time.monotonic() + self.limit_s
        self._events = None
        self._settled = None
        self.finished = False
        self.found = answer_retrieve(inference=inference, app=app, messages=messages)
        if self.found.result is not None:
            self.finished = True  # complete already: settled now, so short credit is the plain 429
            self._settled = answer_settle(inference=inference, app=app, found=self.found, result=self.found.result)
            return
        with failures_recorded(inference):
            request = generation_request(app, self.found.cited, messages)
            try:
                self._events = answering.server_client().generate_stream(**request, **sampling.as_server_params())
            except ModelServerError as exc:
                raise from_model_server(exc) from exc

    def _fail(self, error: OpenAIError) -> OpenAIError:
        self.finished = True
        inference_services.inference_fail(inference=self.inference, error=error)
        return error

    def __iter__(self) -> Iterator[tuple]:
        if self._settled is not None:
            for piece in answer_pieces(self.found.result.text):
                yield ("delta", piece)
            yield ("done", self.found.result, self._settled)
            return
        parts = []
        try:
            for delta in self._events.deltas(deadline=self._deadline):
                if delta:
                    parts.append(delta)
                    yield ("delta", delta)
        except StreamDeadlineExceeded as exc:
            logger.warning("retrieval app stream cut at its deadline (%g s): %s", self.limit_s, exc.message)
            yield ("error", self._fail(stream_deadline_error(self.limit_s)))
            return
        except ModelServerError as exc:
            yield ("error", self._fail(from_model_server(exc)))
            return
        final = self._events.final
        usage = final.get("usage") or {}
        result = RetrievalAnswer(final.get("text", "".join(parts)), final.get("finish_reason", "stop"), "generative",
                                 int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        try:
            settled = answer_settle(inference=self.inference, app=self.app, found=self.found, result=result)
        except OpenAIError as exc:  # short credit: `inference_complete_settled` recorded it as failed, uncharged
            self.finished = True
            yield ("error", exc)
            return
        self.finished = True
        yield ("done", result, settled)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()  # the server cancels the generation and frees its slot
        if not self.finished:
            self.finished = True
            inference_services.inference_fail(
                inference=self.inference,
                error=OpenAIError("The client disconnected before the answer was complete; nothing was charged.",
                                  status=499, type="cancelled", code="client_disconnected"),
                status=InferenceStatus.CANCELLED)
