"""Builders of tiny base models and random peft adapters, for tests and benchmarks.

No pretrained causal LM is available offline, so causal models are random Llama configs with a
byte-level BPE tokenizer trained here on a small corpus. Adapters are real peft adapters written
with ``PeftModel.save_pretrained``; their ``lora_B`` is randomised (peft initialises it to zero,
which would make every adapter equal the base model and the tests vacuous).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from .adapters import adapter_directory_sha256

_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "contributors upload rows to datanets and models are fine tuned on frozen versions",
    "every inference is attributed to the training rows that shaped it",
    "one base model serves many adapters in mixed batches",
    "fees are split to contributors through a ledger and paid on chain",
    "hello world, how are you today? 0123456789 !?.,;:",
] * 20


def build_tokenizer(directory: str | Path, vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (pad id 0, eos id 1) and save it into ``directory``."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS, vocab_size=vocab_size, min_frequency=1, special_tokens=["<pad>", "<eos>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, pad_token="<pad>", eos_token="<eos>")
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def build_tiny_bert_classifier(
    directory: str | Path, *, hidden_size: int = 32, layers: int = 2, num_labels: int = 3, seed: int = 0
) -> Path:
    """Save a random BERT sequence classifier and its tokenizer into ``directory``."""
    directory = Path(directory)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden_size // 16), intermediate_size=hidden_size * 2,
        max_position_embeddings=128, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id,
        id2label={i: f"label_{i}" for i in range(num_labels)},
        label2id={f"label_{i}": i for i in range(num_labels)},
    )
    BertForSequenceClassification(config).save_pretrained(str(directory))
    return directory


def build_tiny_llama(
    directory: str | Path, *, hidden_size: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
    max_positions: int = 256, seed: int = 0,
) -> Path:
    """Save a random Llama causal LM and its tokenizer into ``directory``."""
    directory = Path(directory)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=hidden_size * 2,
        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(directory))
    return directory


def save_random_adapter(
    base_model: torch.nn.Module,
    directory: str | Path,
    *,
    rank: int,
    target_modules: Sequence[str],
    modules_to_save: Sequence[str] | None = None,
    lora_alpha: float | None = None,
    use_rslora: bool = False,
    seed: int = 0,
    scale: float = 0.2,
) -> str:
    """Write a peft LoRA adapter with random weights for ``base_model``; return its sha256.

    ``base_model`` is deep-copied, so it stays a plain model usable for the next adapter.
    """
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank, lora_alpha=lora_alpha if lora_alpha is not None else 2 * rank, target_modules=list(target_modules),
        modules_to_save=list(modules_to_save) if modules_to_save else None, lora_dropout=0.0, use_rslora=use_rslora,
    )
    peft_model = get_peft_model(copy.deepcopy(base_model), config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                param.copy_(torch.randn_like(param) * scale)
    peft_model.save_pretrained(str(directory))
    return adapter_directory_sha256(directory)
