"""Tiny models and synthetic rows shared by the attribution engine tests (built from configs)."""

from __future__ import annotations

import warnings

import torch
from peft import LoraConfig, get_peft_model
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

from attribution.engine.build import TrainingBatch

torch.set_num_threads(1)  # the machine is shared: extra OpenMP threads spin and slow everyone down
VOCAB = 260  # bytes + a few specials: byte values are the token ids of the causal LM rows
PAD = 256


def tiny_classifier(num_labels: int = 3, hidden: int = 32, rank: int = 4, seed: int = 0, dtype=torch.float32,
                    layers: int = 2):
    """BERT (2 layers) + LoRA on query/value + trained classification head (modules_to_save)."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, num_labels=num_labels, max_position_embeddings=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(
            BertForSequenceClassification(config),
            # init_lora_weights=False: random lora_B, so lora_A gradients are not all zero at init.
            LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["query", "value"], task_type="SEQ_CLS",
                       init_lora_weights=False),
        )
    return model.to(dtype)


def tiny_causal_lm(hidden: int = 32, rank: int = 4, seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    model = get_peft_model(
        LlamaForCausalLM(config),
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                   init_lora_weights=False),
    )
    return model.to(dtype)


def random_classification_inputs(n: int, num_labels: int = 3, length: int = 12, seed: int = 0) -> dict:
    """Token rows of varying length (right-padded) with random labels."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, 256, (n, length), generator=generator)
    lengths = torch.randint(length // 2, length + 1, (n,), generator=generator)
    attention_mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()
    input_ids = input_ids.masked_fill(attention_mask == 0, PAD)
    labels = torch.randint(0, num_labels, (n,), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def topical_classification_inputs(n: int, topics: int, num_labels: int = 3, length: int = 12, seed: int = 0,
                                  topic_fraction: float = 0.5) -> dict:
    """Rows ``i`` about topic ``i % topics``: half their tokens come from that topic's 8-token
    vocabulary and their label is ``topic % num_labels`` (contributors who upload topical data)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = random_classification_inputs(n, num_labels, length, seed)
    topic = torch.arange(n) % topics
    topic_tokens = 8 * topic.unsqueeze(1) + torch.randint(0, 8, (n, length), generator=generator)
    use_topic = (torch.rand(n, length, generator=generator) < topic_fraction) & (inputs["attention_mask"] == 1)
    inputs["input_ids"] = torch.where(use_topic, topic_tokens, inputs["input_ids"])
    inputs["labels"] = topic % num_labels
    return inputs


def causal_inputs(prompts: list[str], responses: list[str], length: int = 24) -> dict:
    """Byte-token rows ``prompt + response`` right-padded; labels are -100 on prompt and padding."""
    ids = torch.full((len(prompts), length), PAD)
    labels = torch.full((len(prompts), length), -100)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, (prompt, response) in enumerate(zip(prompts, responses)):
        prompt_ids, response_ids = list(prompt.encode()), list(response.encode())
        tokens = (prompt_ids + response_ids)[:length]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        labels[row, len(prompt_ids) : len(tokens)] = torch.tensor(tokens[len(prompt_ids) :])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def slice_inputs(inputs: dict, rows) -> dict:
    return {key: value[rows] for key, value in inputs.items()}


def training_batches(inputs: dict, contributor_of, batch_size: int = 16, cluster_of=None, row_prefix="row"):
    n = inputs["labels"].shape[0]
    batches = []
    for start in range(0, n, batch_size):
        rows = list(range(start, min(n, start + batch_size)))
        batches.append(TrainingBatch(
            inputs=slice_inputs(inputs, rows),
            row_ids=[f"{row_prefix}{i}" for i in rows],
            contributor_ids=[contributor_of(i) for i in rows],
            cluster_ids=[cluster_of(i) for i in rows] if cluster_of else None,
        ))
    return batches


def train(model, inputs: dict, epochs: int = 30, lr: float = 3e-2, batch_size: int = 16, seed: int = 0):
    """A few epochs of AdamW on the trainable (LoRA + head) parameters, mean token loss."""
    from attribution.engine.gradients import per_example_loss

    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    n = inputs["labels"].shape[0]
    model.train()
    for _ in range(epochs):
        for start in range(0, n, batch_size):
            batch = slice_inputs(inputs, slice(start, start + batch_size))
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = per_example_loss(logits, batch["labels"]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    return model
