"""Generation parameters, token sampling and incremental detokenisation with stop strings."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .errors import InvalidRequestError

MAX_STOP_STRINGS = 4


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings of one generation request (OpenAI-compatible meanings).

    ``temperature == 0`` is greedy decoding. ``seed`` makes sampling reproducible: each request owns
    its random generator, so the tokens do not depend on what else shares the batch.
    """

    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be an integer >= 1", param="max_tokens")
        if not _is_number(self.temperature) or not 0.0 <= self.temperature <= 2.0:
            raise InvalidRequestError("temperature must be a number between 0 and 2", param="temperature")
        if not _is_number(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise InvalidRequestError("top_p must be a number in (0, 1]", param="top_p")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if len(stop) > MAX_STOP_STRINGS or not all(isinstance(s, str) and s for s in stop):
            raise InvalidRequestError(
                f"stop must be a non-empty string or a list of at most {MAX_STOP_STRINGS} non-empty strings",
                param="stop",
            )
        object.__setattr__(self, "stop", stop)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InvalidRequestError("seed must be an integer", param="seed")

    @classmethod
    def from_dict(cls, body: dict) -> GenerationParams:
        """Build from a JSON request body, ignoring keys that are not sampling parameters."""
        fields = {k: body[k] for k in ("max_tokens", "temperature", "top_p", "stop", "seed") if k in body}
        if fields.get("stop") is None:
            fields.pop("stop", None)
        return cls(**fields)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class TokenSampler:
    """Picks the next token for one request from its logits, with its own seeded generator."""

    def __init__(self, params: GenerationParams) -> None:
        self.params = params
        self.seed = params.seed if params.seed is not None else secrets.randbits(63)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)

    def __call__(self, logits: torch.Tensor) -> int:
        if self.params.temperature == 0.0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.double().cpu() / self.params.temperature, dim=-1)
        if self.params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
            keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < self.params.top_p
            probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])
        return int(torch.multinomial(probs, 1, generator=self.generator))


@dataclass
class TextTracker:
    """Turns a growing token list into text deltas, honouring stop strings.

    Text is re-decoded from all generated tokens (byte-level BPE may need several tokens for one
    character). A delta never includes text that could still turn out to be the start of a stop
    string, or an incomplete UTF-8 sequence, so streamed text always equals the final text.
    """

    decode: Callable[[Sequence[int]], str]
    stop: tuple[str, ...]
    token_ids: list[int] = field(default_factory=list)
    emitted: int = 0
    text: str = ""
    stopped: bool = False

    def add(self, token_id: int) -> str:
        """Append a token; return the new safe text. Sets ``stopped`` when a stop string appears."""
        self.token_ids.append(token_id)
        full = self.decode(self.token_ids)
        cut = min((i for i in (full.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.stopped = full[:cut], True
            return self._take(len(self.text))
        self.text = full
        return self._take(len(full) - self._held_back(full))

    def finish(self) -> str:
        """Flush whatever was held back once generation ends."""
        return self._take(len(self.text))

    def _held_back(self, full: str) -> int:
        if full.endswith("\ufffd"):
            return len(full) - len(full.rstrip("\ufffd"))
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(full)), longest, -1):
                if full.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def _take(self, end: int) -> str:
        if end <= self.emitted:
            return ""
        delta, self.emitted = self.text[self.emitted : end], end
        return delta
