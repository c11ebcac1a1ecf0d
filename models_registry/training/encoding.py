"""Turning rows into model inputs: the single definition shared by training, attribution and serving.

Attribution recomputes per-example gradients and serving runs inference; both must see exactly the
token ids and loss masks training saw, or attribution scores and answers drift from the trained
model. So other engines import these functions instead of re-implementing them.

Conventions (all three callers rely on them):

- Classification: ``tokenizer(text, truncation=True, max_length=max_len)`` with the tokenizer's own
  special tokens; ``labels`` is one class id per example.
- Instruction rows: the prompt text is ``format_instruction_prompt(prompt, context)``. Token ids are
  ``[bos] + ids(prompt_text) + ids(response) + [eos]`` where the prompt text and the response are
  tokenized separately (``add_special_tokens=False``), so the prompt ids at inference time are exactly
  the prefix seen in training. ``labels`` copy the ids with -100 on the BOS/prompt part and on padding,
  so the loss covers response tokens (and the closing EOS) only. When too long, the response keeps at
  least half of ``max_len`` and the prompt is cut from the left (its end, the response marker, stays).
- Plain text rows: ``[bos] + ids(text) + [eos]`` cut to ``max_len``; every real token is a label.
- Batches are right-padded to the longest example in the batch (dynamic padding); padding has
  ``attention_mask`` 0 and label -100.

``encode_rows`` turns dataset rows into examples for any task; training pads them per step with
``pad_batch`` and the attribution index build encodes its batches with ``encode_batch`` (both), so the
index sees byte for byte the input ids, labels and attention masks training saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


def format_instruction_prompt(prompt: str, context: str | None = None) -> str:
    """The prompt text for an instruction row; the model's answer follows it directly."""
    parts = [f"### Instruction:\n{prompt.strip()}\n\n"]
    if context and context.strip():
        parts.append(f"### Input:\n{context.strip()}\n\n")
    parts.append("### Response:\n")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class EncodedExample:
    """One unpadded example. ``labels`` is a class id (classification) or per-token labels (causal)."""

    input_ids: tuple[int, ...]
    labels: int | tuple[int, ...] | None = None


def causal_prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt_text: str) -> list[int]:
    """Token ids a causal model is conditioned on for ``prompt_text`` (BOS included when defined)."""
    return _bos(tokenizer) + tokenizer(prompt_text, add_special_tokens=False)["input_ids"]


def _bos(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def _eos(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def tokenize_classification(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    label_ids: Sequence[int] | None,
    max_len: int,
) -> list[EncodedExample]:
    ids = tokenizer(list(texts), truncation=True, max_length=max_len)["input_ids"]
    labels: Sequence[int | None] = label_ids if label_ids is not None else [None] * len(ids)
    return [EncodedExample(tuple(x), label) for x, label in zip(ids, labels, strict=True)]


def tokenize_instructions(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    contexts: Sequence[str | None] | None,
    max_len: int,
) -> list[EncodedExample]:
    contexts = contexts if contexts is not None else [None] * len(prompts)
    prompt_texts = [format_instruction_prompt(p, c) for p, c in zip(prompts, contexts, strict=True)]
    prompt_ids = tokenizer(prompt_texts, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    bos, eos = _bos(tokenizer), _eos(tokenizer)
    examples = []
    for prompt, response in zip(prompt_ids, response_ids, strict=True):
        response = response + eos
        keep_response = min(len(response), max(max_len - len(bos) - len(prompt), max_len // 2))
        room_for_prompt = max(max_len - keep_response - len(bos), 0)
        prefix = bos + (prompt[max(len(prompt) - room_for_prompt, 0) :] if room_for_prompt else [])
        response = response[:keep_response]
        examples.append(
            EncodedExample(tuple(prefix + response), (IGNORE_INDEX,) * len(prefix) + tuple(response))
        )
    return examples


def tokenize_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_len: int
) -> list[EncodedExample]:
    bos, eos = _bos(tokenizer), _eos(tokenizer)
    examples = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        full = tuple((bos + ids + eos)[:max_len])
        examples.append(EncodedExample(full, full))
    return examples


def pad_batch(examples: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example of this batch; the mask and -100 labels hide the padding."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        input_ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids, dtype=torch.long)
        attention_mask[i, : len(e.input_ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    first = examples[0].labels
    if isinstance(first, int):
        batch["labels"] = torch.tensor([e.labels for e in examples], dtype=torch.long)
    elif first is not None:
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for i, e in enumerate(examples):
            labels[i, : len(e.labels)] = torch.tensor(e.labels, dtype=torch.long)
        batch["labels"] = labels
    return batch


def encode_rows(
    tokenizer: PreTrainedTokenizerBase,
    task: str,
    fields: Sequence[Mapping[str, Any]],
    label_names: Sequence[str],
    max_len: int,
) -> list[EncodedExample]:
    """Dataset rows (each row's ``fields``) as training encodes them, one unpadded example per row.

    ``text-classification`` reads ``text`` and ``label`` (its index in ``label_names``); ``instruction``
    reads ``prompt``, ``response`` and an optional ``context``; ``text`` reads ``text``."""
    if task == "text-classification":
        label_ids = {name: i for i, name in enumerate(label_names)}
        return tokenize_classification(
            tokenizer, [f["text"] for f in fields], [label_ids[f["label"]] for f in fields], max_len
        )
    if task == "instruction":
        return tokenize_instructions(
            tokenizer,
            [f["prompt"] for f in fields],
            [f["response"] for f in fields],
            [f.get("context") for f in fields],
            max_len,
        )
    return tokenize_texts(tokenizer, [f["text"] for f in fields], max_len)


def encode_batch(
    tokenizer: PreTrainedTokenizerBase,
    task: str,
    fields: Sequence[Mapping[str, Any]],
    label_names: Sequence[str],
    max_len: int,
) -> dict[str, torch.Tensor]:
    """One padded batch of rows: ``encode_rows`` then ``pad_batch``, what a training step feeds the model."""
    return pad_batch(encode_rows(tokenizer, task, fields, label_names, max_len), tokenizer.pad_token_id)


def encode_classification(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    label_ids: Sequence[int] | None,
    max_len: int,
) -> dict[str, torch.Tensor]:
    """Padded ``input_ids``/``attention_mask`` (+ ``labels`` class ids when given) for one batch."""
    return pad_batch(tokenize_classification(tokenizer, texts, label_ids, max_len), tokenizer.pad_token_id)


def encode_causal(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    contexts: Sequence[str | None] | None,
    max_len: int,
) -> dict[str, torch.Tensor]:
    """Padded instruction batch; ``labels`` are -100 on BOS, prompt and padding tokens."""
    return pad_batch(
        tokenize_instructions(tokenizer, prompts, responses, contexts, max_len), tokenizer.pad_token_id
    )
