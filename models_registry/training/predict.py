"""Loading a trained model version and using it: for the Django side's previews and for tests.

Production serving of many adapters at once lives in the inference engine; these helpers are the
simple, one-model path and use the same encoding functions, so their outputs are the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from .encoding import causal_prompt_ids, encode_classification, format_instruction_prompt
from .manifest import read_manifest
from .sources import (
    BaseModelSource,
    load_causal_model,
    load_classification_model,
    load_tokenizer,
    resolve_model_path,
)


class LoadedModel(NamedTuple):
    """A peft model in eval mode, the tokenizer it was trained with, and its manifest."""

    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    manifest: dict[str, Any]


def load_trained(model_dir: Path | str, device: str = "cpu") -> LoadedModel:
    """Rebuild base model + adapter from a model directory written by ``run_training``."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    content = manifest["content"]
    base_path = resolve_model_path(BaseModelSource(**content["base_model"]["source"]))
    tokenizer = load_tokenizer(model_dir)
    dtype = content["hyperparameters"]["base_dtype"]
    if content["task"] == "text-classification":
        base = load_classification_model(
            base_path, tuple(content["label_names"]), tokenizer.pad_token_id, dtype
        )
    else:
        base = load_causal_model(base_path, dtype)
    model = PeftModel.from_pretrained(base, model_dir).to(device)
    model.eval()
    return LoadedModel(model, tokenizer, manifest)


@torch.inference_mode()
def predict_labels(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int = 128,
    batch_size: int = 32,
) -> list[str]:
    """Label names (from ``model.config.id2label``) predicted for ``texts``."""
    model.eval()
    device = next(model.parameters()).device
    id2label = model.config.id2label
    labels: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = encode_classification(tokenizer, texts[start : start + batch_size], None, max_length)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        labels += [id2label[i] for i in logits.argmax(dim=-1).tolist()]
    return labels


@torch.inference_mode()
def generate_text(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int = 32,
    context: str | None = None,
    as_instruction: bool = True,
) -> str:
    """Greedy continuation of ``prompt``; by default wrapped with ``format_instruction_prompt`` as in training."""
    model.eval()
    device = next(model.parameters()).device
    text = format_instruction_prompt(prompt, context) if as_instruction else prompt
    input_ids = torch.tensor([causal_prompt_ids(tokenizer, text)], device=device)
    output = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)
