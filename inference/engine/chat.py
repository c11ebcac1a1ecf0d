"""A chat history as the prompt text a causal model continues.

:func:`render_chat` turns ``[{"role", "content"}, ...]`` into one prompt string:

- with the tokenizer's chat template when it has one:
  ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)``, so every
  turn reaches the model in the format its tokenizer defines (a template that prints the BOS token
  itself is fine: the engine adds BOS only when the ids do not start with it);
- otherwise in the plain format: one ``"{role}: {content}"`` line per message, then a last
  ``"assistant:"`` that the answer continues (:func:`plain_chat_prompt`).
"""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import TemplateError

from .errors import InvalidRequestError

ROLES = ("system", "user", "assistant", "tool")


def checked_messages(messages: object) -> list[dict[str, str]]:
    """``messages`` as a list of ``{"role", "content"}`` string dicts; raises ``InvalidRequestError``."""
    if not isinstance(messages, list | tuple) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {role, content} objects", param="messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequestError(f"messages[{i}].role must be one of {', '.join(ROLES)}",
                                      param=f"messages[{i}].role")
        if not isinstance(message.get("content"), str):
            raise InvalidRequestError(f"messages[{i}].content must be a string", param=f"messages[{i}].content")
        out.append({"role": message["role"], "content": message["content"]})
    return out


def plain_chat_prompt(messages: Sequence[dict[str, str]]) -> str:
    """The format used when the tokenizer has no chat template."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def render_chat(tokenizer, messages: object) -> str:
    """The prompt text for ``messages`` (see the module docstring)."""
    messages = checked_messages(messages)
    if not getattr(tokenizer, "chat_template", None):
        return plain_chat_prompt(messages)
    try:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except (TemplateError, ValueError, TypeError) as exc:  # templates raise for roles or orders they refuse
        raise InvalidRequestError(f"the model's chat template refused these messages: {exc}",
                                  param="messages") from exc
    if not isinstance(rendered, str) or not rendered:
        raise InvalidRequestError("the model's chat template rendered an empty prompt", param="messages")
    return rendered
