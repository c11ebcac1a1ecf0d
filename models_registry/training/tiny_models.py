"""Tiny, randomly initialised base models with locally trained tokenizers.

No small pretrained causal LM can be installed here and tests must not download anything, so tests,
demos and other engines build these in a temporary directory. They exercise every code path a real
model does (loading with ``Auto*.from_pretrained``, LoRA, generation); the quality of their text is
not the point. Both builders are deterministic for a given corpus and seed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

# Renders a user turn exactly as format_instruction_prompt(content) does, so chat-style callers and
# the engine's instruction format agree for these models (contexts are engine-only).
INSTRUCTION_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}"
    "### Instruction:\n{{ message['content'] | trim }}\n\n### Response:\n"
    "{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{%- endfor %}"
)


def build_tiny_causal_model(
    out_dir: Path | str,
    corpus_texts: Sequence[str],
    vocab_size: int = 512,
    arch: Literal["llama", "gpt2"] = "llama",
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Train a byte-level BPE tokenizer on ``corpus_texts``, build a random tiny causal LM, save both.

    The result loads with ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained(out_dir)``. The
    tokenizer has BOS/EOS/PAD tokens, adds none automatically (the engine's encoding places them) and
    carries a chat template matching the engine's instruction prompt format.
    """
    if arch not in ("llama", "gpt2"):
        raise ValueError(f"arch must be 'llama' or 'gpt2', got {arch!r}")
    out_dir = Path(out_dir)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        list(corpus_texts),
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[PAD, BOS, EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = INSTRUCTION_CHAT_TEMPLATE
    special = {
        "bos_token_id": fast.bos_token_id,
        "eos_token_id": fast.eos_token_id,
        "pad_token_id": fast.pad_token_id,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "llama":
            config = LlamaConfig(
                vocab_size=len(fast),
                hidden_size=hidden_size,
                intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=512,
                tie_word_embeddings=False,
                **special,
            )
            model = LlamaForCausalLM(config)
        else:
            config = GPT2Config(
                vocab_size=len(fast),
                n_embd=hidden_size,
                n_layer=num_layers,
                n_head=4,
                n_positions=512,
                **special,
            )
            model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def build_tiny_encoder_model(
    out_dir: Path | str,
    corpus_texts: Sequence[str],
    vocab_size: int = 256,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
) -> Path:
    """Build a lower-casing WordPiece tokenizer from ``corpus_texts``; save it and a random tiny BERT.

    Like a real pretrained encoder, ``AutoModelForSequenceClassification.from_pretrained(out_dir)``
    adds a fresh classifier head (reported MISSING), which is what fine-tuning then trains.
    """
    out_dir = Path(out_dir)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The vocabulary is built here rather than with tokenizers' WordPieceTrainer, whose token ids
    # vary between runs on the same corpus: whole words by frequency (ties by spelling) plus every
    # character, alone and as a "##" continuation, so any corpus word can be spelled.
    counts: Counter[str] = Counter(
        word
        for text in corpus_texts
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    characters = sorted({c for word in counts for c in word})
    room = max(vocab_size - len(specials) - 2 * len(characters), 0)
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if len(w) > 1][:room]
    tokens = specials + characters + [f"##{c}" for c in characters] + words
    tokenizer = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=len(fast),
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=2,
            intermediate_size=2 * hidden_size,
            max_position_embeddings=512,
            pad_token_id=fast.pad_token_id,
        )
        model = BertModel(config)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir
