"""Validation of OpenAI-style request bodies, with OpenAI's error shape and clear messages.

The model server validates again (it is the authority on the context length); checking here first
refuses bad requests before any credit check or network hop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings

from .errors import invalid

MAX_STOP_STRINGS = 4


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None

    def as_server_params(self) -> dict:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "stop": list(self.stop) or None, "seed": self.seed}


def _number(body: dict, key: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(f"'{key}' must be a number, got {value!r}.", param=key)
    if value > high or value < low or (low_open and value == low):
        bound = f"greater than {low}" if low_open else f"at least {low}"
        raise invalid(f"'{key}' must be {bound} and at most {high}; got {value}.", param=key)
    return float(value)


def sampling(body: dict) -> Sampling:
    limit = settings.INFERENCE_MAX_TOKENS_LIMIT
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(key, None)
    if max_tokens is None:
        max_tokens = settings.INFERENCE_MAX_TOKENS_DEFAULT
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= limit:
        raise invalid(f"'{key}' must be an integer from 1 to {limit}; got {max_tokens!r}.", param=key)
    n = body.get("n")
    if n not in (None, 1):
        raise invalid("Unsupported parameter 'n': only n=1 is implemented, one answer (and one receipt) per request.",
                      param="n", code="unsupported_parameter")
    stop = body.get("stop")
    if stop is None:
        stop = ()
    elif isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, list | tuple) or len(stop) > MAX_STOP_STRINGS or not all(
            isinstance(s, str) and s for s in stop):
        raise invalid(f"'stop' must be a non-empty string or a list of at most {MAX_STOP_STRINGS} non-empty strings.",
                      param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise invalid("'seed' must be an integer.", param="seed")
    return Sampling(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        stop=tuple(stop), seed=seed,
    )


def model_name(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("'model' is required: the slug of a deployed model (GET /v1/models lists them).",
                      param="model", code="missing_required_parameter")
    return model.strip()


def stream_flag(body: dict) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise invalid("'stream' must be true or false.", param="stream")
    return stream


def stream_include_usage(body: dict, stream: bool) -> bool:
    """`stream_options.include_usage`: whether a streamed answer ends with a usage chunk (`choices: []`)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise invalid("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    if not isinstance(options, dict):
        raise invalid("'stream_options' must be an object such as {\"include_usage\": true}.",
                      param="stream_options")
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise invalid("'stream_options.include_usage' must be true or false.", param="stream_options.include_usage")
    return bool(include)


def _unused_flag(value) -> bool:
    return value is False


def _zero(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value == 0


_NO_TOOLS = "tool (function) calling is not implemented; the models answer with text only."
_TEXT_ONLY = "only text output is implemented."
# OpenAI parameters these endpoints do not implement: {name: (is the value one that asks for nothing, why)}.
# Absent or null is always accepted; any other value is refused with a 400 naming the parameter, never
# silently ignored. `n` (only 1) is checked with the sampling parameters.
_CHAT_UNSUPPORTED = {
    "tools": (lambda v: v == [], _NO_TOOLS),
    "tool_choice": (lambda v: v == "none", _NO_TOOLS + " Leave it out or send \"none\"."),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), _NO_TOOLS),
    "functions": (lambda v: v == [], _NO_TOOLS),
    "function_call": (lambda v: v == "none", _NO_TOOLS),
    "response_format": (lambda v: v == {"type": "text"},
                        "only {\"type\": \"text\"} is accepted; JSON mode and structured outputs are not implemented."),
    "logprobs": (_unused_flag, "log probabilities are not returned (leave it out or false)."),
    "top_logprobs": (_zero, "log probabilities are not returned (leave it out or 0)."),
    "logit_bias": (lambda v: v == {}, "logit biases are not implemented."),
    "presence_penalty": (_zero, "presence penalties are not implemented (leave it out or 0)."),
    "frequency_penalty": (_zero, "frequency penalties are not implemented (leave it out or 0)."),
    "modalities": (lambda v: v == ["text"], _TEXT_ONLY),
    "audio": (lambda v: False, _TEXT_ONLY),
    "prediction": (lambda v: False, "predicted outputs are not implemented."),
}
_COMPLETIONS_UNSUPPORTED = {
    "logprobs": (lambda v: False, "log probabilities are not returned."),
    "echo": (_unused_flag, "the answer never repeats the prompt (leave it out or false)."),
    "best_of": (lambda v: v == 1 and not isinstance(v, bool), "only best_of=1 is implemented."),
    "suffix": (lambda v: v == "", "insertion is not implemented."),
    "logit_bias": _CHAT_UNSUPPORTED["logit_bias"],
    "presence_penalty": _CHAT_UNSUPPORTED["presence_penalty"],
    "frequency_penalty": _CHAT_UNSUPPORTED["frequency_penalty"],
}


def _refuse_unsupported(body: dict, table: dict) -> None:
    for name, (unused, why) in table.items():
        value = body.get(name)
        if value is not None and not unused(value):
            raise invalid(f"Unsupported parameter '{name}': {why}", param=name, code="unsupported_parameter")


def chat_unsupported(body: dict) -> None:
    """Refuse (400, `param` = the parameter) a chat completion asking for what is not implemented."""
    _refuse_unsupported(body, _CHAT_UNSUPPORTED)


def completions_unsupported(body: dict) -> None:
    _refuse_unsupported(body, _COMPLETIONS_UNSUPPORTED)


def _content_text(content, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise invalid(f"messages[{index}].content parts must be text parts; images and audio are not "
                              "supported.", param=f"messages[{index}].content")
            parts.append(part["text"])
        return "".join(parts)
    raise invalid(f"messages[{index}].content must be a string.", param=f"messages[{index}].content")


def messages(body: dict) -> list[tuple[str, str]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("'messages' must be a non-empty list of {role, content} objects.", param="messages",
                      code="missing_required_parameter" if raw is None else "invalid_value")
    out = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant",
                                                                          "tool"):
            raise invalid(f"messages[{i}] needs a role of system, user or assistant.", param=f"messages[{i}].role")
        out.append((message["role"], _content_text(message.get("content"), i)))
    if not any(role == "user" and text.strip() for role, text in out):
        raise invalid("'messages' must contain a user message with some text.", param="messages")
    _check_length(sum(len(text) for _, text in out), "messages")
    return out


def prompt(body: dict) -> str:
    value = body.get("prompt")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if not isinstance(value, str) or not value:
        raise invalid("'prompt' must be a non-empty string (one prompt per request).", param="prompt",
                      code="missing_required_parameter" if value is None else "invalid_value")
    _check_length(len(value), "prompt")
    return value


def classification_input(body: dict) -> str:
    value = body.get("input")
    if not isinstance(value, str) or not value.strip():
        raise invalid("'input' must be a non-empty string.", param="input")
    _check_length(len(value), "input")
    return value


def _check_length(chars: int, param: str) -> None:
    limit = settings.INFERENCE_MAX_PROMPT_CHARS
    if chars > limit:
        total = "The messages total" if param == "messages" else f"The {param} is"
        raise invalid(f"{total} {chars} characters; at most {limit} are accepted. Shorten it.", param=param,
                      code="context_length_exceeded")
