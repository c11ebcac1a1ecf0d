"""Adversaries against the payout path, on a real LoRA fine-tune (issue #16, part 3).

Every case goes through the platform's payout path: ``build_index(model, batches, dir, config, model_hash,
eval_inputs=<the eval split>)`` with the platform's ``IndexConfig`` (lineage/settings.py ATTRIBUTION_*, read
at run time, like attribution/services/builds.py), then ``Attributor(model, index, <the platform's SharePolicy>)
.attribute(with_predicted_labels(model, queries))``. The money that moves for a query ("pool paid") is the
attribution's shares, or, when the attribution is empty (no credit group passed the null test), the index's
``fallback_shares()``. Every figure below is measured on that pool, both paths together: each query's pool
sums to 1, so "share of the pool" = (sum over queries of the accounts' pool shares) / queries.

Model: all-MiniLM-L6-v2 (bundled) + head + LoRA r=8 (bench/attribution_lora.py), trained on templated
support sentences (4 intents) from 12 honest contributors of unequal size (60 down to 5 rows in the full
run), each leaning to one intent. Rows enter in accepted order; exact duplicates (casefolded, whitespace
normalised, as the content hash) are dropped and near-duplicate cluster ids are assigned by the platform's
MinHash index (datanets/ingest/neardup.py, the Datanet defaults: threshold 0.8, settings' num_perm and
shingle size), each row linked to the root of the earliest accepted row it matches, as ingestion does.
Queries: held-out sentences (and for the copier, sentences on the copied row's template). The eval split
given to the index is a separate held-out set. Trained adapters are cached in var/bench/.

Every retrained model gets the honest model's optimisation budget (the same number of optimiser steps): with a
budget in epochs, an adversary's 50 extra rows were 50 rows' worth of extra steps for an under-trained model and
lowered its held-out loss whatever they held (measured: random strings took the held-out loss from 1.06 to 0.95),
so "useless" rows were not useless and the cases did not test what they claim. Each adversarial case prints its
retraining truth beside the payout: the held-out loss (a third held-out set, neither queries nor eval split)
of the model trained with the adversary's rows against the honest model's.

Figures (target in brackets):
* ``sybil``: the largest honest contributor's rows relabelled into 2, 5 and 50 accounts (same model, same
  rows, only account labels differ; the index is rebuilt each time). ``gain`` = (total pool share of those
  rows over all queries when split) / (the same total in one account) - 1. [gain <= 1% for every split]
  ``merge``: two honest accounts merged into one: the largest change of any pool share (the merged account
  against the sum of the two, everyone else against themselves) over all queries. [<= 1e-6, i.e. nothing]
* ``junk_lottery``: 200 random character strings with random labels in 200 one-row accounts, trained on
  (the model is retrained): their total share of the pool, the part of it the platform holds for curator
  review after the index build (``held_accounts``: the owners of rows flagged harmful, and contributors whose
  rows together are worth less than ATTRIBUTION_LOW_VALUE_RATIO of as many typical rows on the eval
  split), and what reaches them unreviewed. [unreviewed <= 0.5%] Honest accounts held by the same rules are
  reported (a false hold delays an honest contributor's earnings until a curator releases them).
* ``volume_spam``: 200 rows of random words (the domain's vocabulary, shuffled) with random labels from one
  account, retrained: the same three figures. [unreviewed <= 0.5%] Some of these rows name their label by
  chance ("… freezes …" labelled technical) and are worth as much as honest rows on the eval split; the rest
  hurt. Per-row rules pay the first and cannot charge the second; the account's net value is what exposes it.
* ``copier``: on the clean model, the honest row with the most credit (its contributor's pool share on each
  query split over that contributor's rows in proportion to their positive row scores, summed over the
  queries) is the target. A copier account, accepted after everyone, uploads near-copies of it (small
  edits; the ones MinHash links share the target's cluster) and paraphrases (same slots and label, another
  template of the intent: not near-duplicates). Retrained. ``ratio`` = the copier's pool share summed over
  the queries that paid the target on the clean model / the target's credit on those queries on the clean
  model. [ratio <= 5%] Reported beside it: the same split for near-copies alone (they share the cluster, so
  first come keeps the credit) and the target's own credit after the copy.
* ``poisoner``: 30 real sentences with wrong labels from one account, retrained: the same three figures
  [unreviewed <= 0.5%], and how many of its rows the index flags as harmful on the eval split (reported; the honest
  baseline is the 30-row honest contributor's share on the same model).
Baselines measured in the same run: the test accuracy of each model, the share of empty attributions (the
fallback pays), and honest contributors' shares.

Usage: .venv/bin/python bench/attribution_adversarial.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from attribution.engine import credit as credit_rules  # noqa: E402
from attribution.engine.build import IndexConfig, TrainingBatch  # noqa: E402
from attribution.engine.build_pass import build_index  # noqa: E402
from attribution.engine.gradients import per_example_loss  # noqa: E402
from attribution.engine.projection import ProjectionSpec  # noqa: E402
from attribution.engine.query import Attributor, with_predicted_labels  # noqa: E402
from attribution.engine.shares import SharePolicy  # noqa: E402
from bench.lora_support import _SLOTS, _TEMPLATES, INTENTS, minilm_lora, rows, tokenise, train_lora  # noqa: E402
from datanets.ingest.neardup import NearDupIndex  # noqa: E402
from datanets.ingest.normalise import normalise_text  # noqa: E402

CACHE_DIR = Path(__file__).resolve().parents[1] / "var" / "bench"
DATANET_NEAR_DUP_THRESHOLD = 0.8  # datanets.models.Datanet.near_dup_threshold default

TARGETS = {"sybil_gain": 0.01, "merge_change": 1e-6, "junk_lottery": 0.005, "volume_spam": 0.005,
           "copier_ratio": 0.05, "poisoner": 0.005}


# --- the platform's configuration -------------------------------------------------------------------------

def platform_settings():
    """lineage/settings.py, read the way the platform reads it (environment, then the embedded defaults)."""
    import lineage.settings as settings

    return settings


# Setting names that do not follow ATTRIBUTION_<FIELD NAME> (attribution/services/builds.py).
_SETTING_ALIASES = {"harm_outlier_z": "ATTRIBUTION_MISLABEL_Z"}


def _from_settings(cls, **given):
    """``cls(**given, <every other field that lineage/settings.py sets>)``: the fields set by ATTRIBUTION_<NAME>
    (or the alias above), so a policy or index field the platform configures is configured here the same way."""
    s = platform_settings()
    options = dict(given)
    for f in dataclasses.fields(cls):
        name = _SETTING_ALIASES.get(f.name, f"ATTRIBUTION_{f.name.upper()}")
        if f.name not in options and hasattr(s, name):
            options[f.name] = getattr(s, name)
    return cls(**options)


def share_policy() -> SharePolicy:
    """attribution/services/loading.py ``_share_policy()``: the SharePolicy built from the ATTRIBUTION_* settings."""
    return _from_settings(SharePolicy)


def index_config(seed: int) -> IndexConfig:
    """The IndexConfig attribution/services/builds.py ``_build`` builds with (k, projection kind and every
    IndexConfig field from the ATTRIBUTION_* settings)."""
    s = platform_settings()
    return _from_settings(IndexConfig, projection=ProjectionSpec(seed=seed, k=s.ATTRIBUTION_K,
                                                                 kind=s.ATTRIBUTION_PROJECTION))


def near_dup_index() -> NearDupIndex:
    s = platform_settings()
    return NearDupIndex(threshold=DATANET_NEAR_DUP_THRESHOLD, num_perm=s.DATANETS_NEAR_DUP_NUM_PERM,
                        shingle_size=s.DATANETS_NEAR_DUP_SHINGLE_SIZE)


# --- data -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sentence:
    text: str
    label: int
    template: int = -1
    slots: dict = field(default_factory=dict, compare=False)
    prefix: str = ""


def sentences(n: int, seed: int) -> list[Sentence]:
    """bench/attribution_lora.py ``support_sentences`` (same generator), keeping template, slots and prefix."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % len(INTENTS)
        template = rng.choice(range(len(_TEMPLATES[INTENTS[label]])))
        slots = {key: rng.choice(values) for key, values in _SLOTS.items()}
        prefix = ""
        if rng.random() < 0.3:
            prefix = rng.choice(["Hi, ", "Hello. ", "Urgent: ", "Quick question: "])
        out.append(Sentence(prefix + _TEMPLATES[INTENTS[label]][template].format(**slots), label, template,
                            slots, prefix))
    return out


@dataclass
class Row:
    row_id: str
    text: str
    label: int
    contributor: str
    cluster: str | None = None
    order: int = 0


def accept(rows_in_order: list[Row], existing: list[Row] | None = None) -> list[Row]:
    """Ingestion: drop exact duplicates of accepted content, then link near-duplicates (MinHash) to the cluster
    root of the earliest accepted row they match; accepted order continues after ``existing``."""
    accepted = [dataclasses.replace(r) for r in existing or []]
    seen = {normalise_text(r.text, casefold=True) for r in accepted}
    index = near_dup_index()
    root = {}
    for r in accepted:
        index.add(r.row_id, r.text)
        root[r.row_id] = r.cluster or r.row_id
    for r in rows_in_order:
        key = normalise_text(r.text, casefold=True)
        if key in seen:
            continue
        seen.add(key)
        match = index.query(r.text)
        root[r.row_id] = root[match.row_id] if match is not None else r.row_id
        index.add(r.row_id, r.text)
        accepted.append(Row(r.row_id, r.text, r.label, r.contributor, None, len(accepted)))
    sizes: dict[str, int] = {}
    for r in accepted:
        sizes[root[r.row_id]] = sizes.get(root[r.row_id], 0) + 1
    for r in accepted:
        r.cluster = root[r.row_id] if sizes[root[r.row_id]] > 1 else None
    return accepted


def honest_rows(sizes: Sequence[int], seed: int) -> list[Row]:
    """Contributors ``h00``... of the given sizes, each drawing 75% of its rows from its home intent."""
    pool = sentences(4 * sum(sizes), seed)
    by_label = {label: [s for s in pool if s.label == label] for label in range(len(INTENTS))}
    rng = random.Random(seed + 1)
    out = []
    for c, size in enumerate(sizes):
        home = c % len(INTENTS)
        for j in range(size):
            label = home if j < round(0.75 * size) else rng.choice([x for x in range(len(INTENTS)) if x != home])
            s = by_label[label].pop()
            out.append(Row(f"h{len(out)}", s.text, s.label, f"h{c:02d}"))
    random.Random(seed + 2).shuffle(out)  # accepted in upload order across contributors
    return out


def random_strings(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789     "
    return [("".join(rng.choice(alphabet) for _ in range(rng.randint(15, 60))).strip() or "x",
             rng.randrange(len(INTENTS))) for _ in range(n)]


def random_words(n: int, seed: int) -> list[tuple[str, int]]:
    vocabulary = sorted({w for templates in _TEMPLATES.values() for t in templates for w in t.split() if "{" not in w}
                        | {w for values in _SLOTS.values() for v in values for w in v.split()})
    rng = random.Random(seed)
    return [(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(5, 12))), rng.randrange(len(INTENTS)))
            for _ in range(n)]


# Two rewordings of each template of bench/attribution_lora.py (same order), with the same slots.
_REWORDINGS = {
    "billing": [["My {plan} plan charged me {amount} two times", "Double charge of {amount} on my {plan} plan"],
                ["My invoice this {period} says {amount}, why?", "How come I am invoiced {amount} for this {period}?"],
                ["I would like my {amount} back for the {plan} subscription",
                 "Please refund the {amount} I paid for {plan}"],
                ["{amount} was taken from my card in error", "You billed my card {amount} by accident"],
                ["What is this {amount} fee on the {period} statement?",
                 "My {period} statement has a {amount} fee I do not understand"]],
    "shipping": [["{days} days and still no {item}", "I am still waiting for my {item}, it has been {days} days"],
                 ["The {item} I bought {period} is not here yet", "Has my {item} from {period} shipped?"],
                 ["My {item} went missing in {city} with the courier", "The delivery company lost the {item} near {city}"],
                 ["Please send my {item} to {city} instead", "I want the {item} delivered to {city} now"],
                 ["The tracking of the {item} is stuck for {days} days", "No tracking update on my {item} for {days} days"]],
    "technical": [["Opening {feature} crashes the {app} app", "Every time I go to {feature} the {app} app closes"],
                  ["{feature} always gives me error {code}", "Using {feature} fails with error {code}"],
                  ["Since the {app} update {feature} is broken", "The {app} update broke {feature}"],
                  ["{feature} freezes the {app} screen", "The {app} app hangs on {feature}"],
                  ["Error {code} appears on {feature} in the {app} app", "In the {app} app {feature} shows error {code}, why"]],
    "account": [["Login to my account fails from {city}", "I am unable to sign in to my account in {city}"],
                ["I need a password reset on my {plan} account", "Reset my {plan} account password please"],
                ["I want to update my account email {period}", "Changing the email address of my account {period}, how?"],
                ["After {days} tries my account got locked", "{days} failed attempts locked my account"],
                ["Please remove my {plan} account and my data", "Close my {plan} account and erase everything"]],
}


def near_copies(target: Sentence) -> list[str]:
    """Small edits of a sentence (not exact duplicates once casefolded and whitespace-normalised)."""
    body = target.text[len(target.prefix):]
    return [body + "!", body + " please", ("Hello, " if not target.prefix else "") + body + " ??",
            target.text + " thanks", target.text + "."]


def paraphrases(target: Sentence) -> list[str]:
    """The same content (slots) and intent, reworded: not near-duplicates."""
    return [t.format(**target.slots) for t in _REWORDINGS[INTENTS[target.label]][target.template]]


def targeted_queries(target: Sentence, n: int, seed: int) -> list[Sentence]:
    """Other fillings of the target's template: outputs the target row plausibly supports."""
    rng = random.Random(seed)
    template = _TEMPLATES[INTENTS[target.label]][target.template]
    out = []
    while len(out) < n:
        slots = {key: rng.choice(values) for key, values in _SLOTS.items()}
        text = template.format(**slots)
        if normalise_text(text, casefold=True) != normalise_text(target.text, casefold=True):
            out.append(Sentence(text, target.label, target.template, slots))
    return out


# --- models -----------------------------------------------------------------------------------------------

class Harness:
    def __init__(self, seq: int, epochs: int):
        self.seq, self.epochs = seq, epochs
        self.model, self.tokenizer = minilm_lora(seed=0)
        self.initial = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        self.cached_models = 0
        self.steps: int | None = None  # set to the honest model's step count once it is trained

    def encode(self, texts: Sequence[str], labels: Sequence[int]) -> dict[str, torch.Tensor]:
        return tokenise(self.tokenizer, list(texts), list(labels), self.seq)

    def _load(self, state: Mapping[str, torch.Tensor]):
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if p.requires_grad:
                    p.copy_(state[name])
        self.model.eval()
        return self.model

    def trained(self, training: list[Row]):
        """The model trained on ``training`` (cached in var/bench/ by data, recipe and initial adapter), with
        the optimisation budget of the honest model (``steps``, once set): every model gets the same number
        of optimiser steps, so rows added by an adversary add data, not training time (with a budget in
        epochs, 50 more rows of anything meant more steps for an under-trained model, and lowered its
        held-out loss whatever they held)."""
        data = self.encode([r.text for r in training], [r.label for r in training])
        digest = hashlib.sha256()
        for tensor in (*data.values(), *self.initial.values()):
            digest.update(tensor.numpy().tobytes())
        digest.update(f"epochs={self.epochs}:seq={self.seq}:seed=1:bs=16:lr=2e-3".encode())
        if self.steps is not None:
            digest.update(f":steps={self.steps}".encode())
        path = CACHE_DIR / f"adversarial_{digest.hexdigest()[:16]}.pt"
        if path.exists():
            self.cached_models += 1
            return self._load(torch.load(path))
        train_lora(self._load(self.initial), data, self.epochs, seed=1, steps=self.steps)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        torch.save({n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}, path)
        return self.model

    def held_out_loss(self, inputs) -> float:
        """Mean loss of the current model on ``inputs`` (their true labels)."""
        with torch.no_grad():
            logits = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return float(per_example_loss(logits, inputs["labels"]).mean())

    def accuracy(self, inputs) -> float:
        with torch.no_grad():
            logits = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return float((logits.argmax(-1) == inputs["labels"]).float().mean())


def batches_of(harness: Harness, training: list[Row], account: Callable[[Row], str] = lambda r: r.contributor,
               batch_size: int = 16) -> list[TrainingBatch]:
    out = []
    for s in range(0, len(training), batch_size):
        part = training[s : s + batch_size]
        out.append(TrainingBatch(harness.encode([r.text for r in part], [r.label for r in part]),
                                 [r.row_id for r in part], [account(r) for r in part],
                                 cluster_ids=[r.cluster for r in part], accepted_order=[r.order for r in part]))
    return out


@dataclass
class Payout:
    """One index's attributions of a query set: the pool paid per query (the attribution's shares, or the
    index's fallback when it is empty), by account and by row."""

    pools: list[dict[str, float]]
    row_credit: list[dict[str, float]]  # per query: the paid rows' share of the pool (top rows of each account)
    empty: int
    index: object
    held: frozenset = frozenset()  # accounts whose earnings the platform holds for curator review

    def total(self, accounts: Callable[[str], bool], queries: Sequence[int] | None = None) -> float:
        picked = range(len(self.pools)) if queries is None else queries
        return float(sum(share for q in picked for c, share in self.pools[q].items() if accounts(c)))

    def unheld_total(self, accounts: Callable[[str], bool], queries: Sequence[int] | None = None) -> float:
        """What reaches ``accounts`` without a curator's review: their pool share, less held accounts'."""
        return self.total(lambda c: accounts(c) and c not in self.held, queries)

    def row_total(self, row_id: str, queries: Sequence[int] | None = None) -> float:
        picked = range(len(self.pools)) if queries is None else queries
        return float(sum(self.row_credit[q].get(row_id, 0.0) for q in picked))


def harmful_row_ids(index) -> set[str]:
    """Rows the index's valuation on the eval split flags as harmful (they earn nothing)."""
    return set(index.manifest["credit"]["harmful_rows"])


def held_accounts(index) -> frozenset:
    """Accounts whose earnings the platform holds for review after this index's build
    (attribution/services/builds.py ``_credit_summary``): owners of rows flagged harmful, and contributors whose
    rows together are worth less than ATTRIBUTION_LOW_VALUE_RATIO of as many typical rows."""
    flagged = harmful_row_ids(index)
    held = {c for r, c in zip(index.row_ids, index.row_contributor_ids) if r in flagged}
    if index.manifest["credit"].get("valued"):
        tables = index.credit()
        positions, _ = credit_rules.low_value_contributors(
            tables.row_values, tables.row_owner, len(index.contributors),
            platform_settings().ATTRIBUTION_LOW_VALUE_RATIO, tables.contributor_value_se,
            platform_settings().ATTRIBUTION_LOW_VALUE_FDR, index.manifest["credit"].get("value_queries", 0))
        held |= {index.contributors[p] for p in positions.tolist()}
    return frozenset(held)


class Platform:
    """Builds indexes and pays queries the platform's way."""

    def __init__(self, harness: Harness, eval_inputs: list[dict], workdir: Path, seed: int = 99):
        self.harness, self.eval_inputs, self.workdir, self.seed = harness, eval_inputs, workdir, seed
        self.builds = 0
        self.policy = share_policy()

    def build(self, model, training: list[Row], account=lambda r: r.contributor, tag=""):
        """The platform's index over ``training`` (accounts by ``account``) and its attributor."""
        self.builds += 1
        index = build_index(model, batches_of(self.harness, training, account),
                            self.workdir / f"index-{self.builds}", index_config(self.seed),
                            model_hash=f"adversarial-{tag}", eval_inputs=self.eval_inputs)
        return index, Attributor(model, index, self.policy)

    def payout(self, model, built, queries: dict) -> Payout:
        index, attributor = built
        attributions = attributor.attribute(with_predicted_labels(model, queries))
        fallback = index.fallback_shares(self.policy.rows_per_contributor)
        paid = [a.shares if not a.shares.is_empty else fallback for a in attributions]
        return Payout([dict(p.shares) for p in paid],
                      [{row: credit for listed in p.rows.values() for row, credit in listed} for p in paid],
                      sum(a.shares.is_empty for a in attributions), index, held_accounts(index))

    def pay(self, model, training: list[Row], queries: dict, account=lambda r: r.contributor, tag="") -> Payout:
        return self.payout(model, self.build(model, training, account, tag), queries)


# --- the run ----------------------------------------------------------------------------------------------

def check(value: float, target: float) -> dict:
    return {"value": value, "target": target, "pass": bool(value <= target)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # shared 2-core machine
    started = time.perf_counter()
    if args.quick:
        sizes, seq, epochs, n_queries, n_eval, n_junk, n_spam, n_poison = (
            [24, 18, 14, 12, 10, 8, 8, 6, 6, 4, 4, 2], 32, 2, 20, 32, 50, 50, 12)
        splits = (2, 5, 20)
    else:
        sizes, seq, epochs, n_queries, n_eval, n_junk, n_spam, n_poison = (
            [60, 45, 35, 30, 25, 25, 20, 20, 15, 10, 10, 5], 32, 3, 50, 100, 200, 200, 30)
        splits = (2, 5, 50)
    harness = Harness(seq, epochs)
    honest = accept(honest_rows(sizes, seed=0))
    held_out = sentences(n_queries + n_eval + 600, seed=7)
    honest_texts = {normalise_text(r.text, casefold=True) for r in honest}
    held_out = [s for s in held_out if normalise_text(s.text, casefold=True) not in honest_texts]
    query_sentences, eval_sentences = held_out[:n_queries], held_out[n_queries : n_queries + n_eval]
    spare = held_out[n_queries + n_eval + 200 :]
    queries = harness.encode([s.text for s in query_sentences], [s.label for s in query_sentences])
    eval_data = harness.encode([s.text for s in eval_sentences], [s.label for s in eval_sentences])
    eval_inputs = [rows(eval_data, slice(s, s + 32)) for s in range(0, n_eval, 32)]
    # A separate held-out set for the retraining truth (neither queries nor the index's eval split).
    truth_sentences = held_out[n_queries + n_eval : n_queries + n_eval + 200]
    truth_data = harness.encode([s.text for s in truth_sentences], [s.label for s in truth_sentences])
    report: dict = {"config": {"rows_honest": len(honest), "contributors": len(sizes), "seq_len": seq,
                               "epochs": epochs, "queries": n_queries, "eval_rows": n_eval,
                               "index": {**index_config(99).__dict__, "projection": index_config(99).projection.__dict__},
                               "policy": share_policy().__dict__, "quick": args.quick}}
    lines = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory() as directory:
        platform = Platform(harness, eval_inputs, Path(directory))

        # Clean model: sybil, merge, and the copier's target.
        model = harness.trained(honest)
        clean_accuracy = harness.accuracy(eval_data)
        clean_loss = harness.held_out_loss(truth_data)
        harness.steps = epochs * math.ceil(len(honest) / 16)  # every retrain gets the honest model's budget
        report["config"]["optimiser_steps"] = harness.steps

        def truth(tag: str) -> dict:
            """What the adversary's rows did to the model, by retraining: held-out loss with them vs without."""
            loss = harness.held_out_loss(truth_data)
            return {"held_out_loss_without": clean_loss, "held_out_loss_with": loss, "rows_helped": loss < clean_loss,
                    "accuracy": harness.accuracy(truth_data)}

        def money(paid: Payout, adversary: Callable[[str], bool], target: str) -> dict:
            """The adversary's pool share, the part of it held for review, what reaches it unreviewed (the
            target), and honest accounts held by mistake."""
            pool = paid.total(adversary) / n_queries
            unheld = paid.unheld_total(adversary) / n_queries
            honest_held = sorted(c for c in paid.held if c in counts)
            return {"pool_share": pool, "held_share": pool - unheld, "honest_accounts_held": honest_held,
                    **check(unheld, TARGETS[target])}

        def money_words(m: dict) -> str:
            return (f"{m['pool_share']:.3%} of the pool, {m['held_share']:.3%} of it held for review, "
                    f"{m['value']:.3%} reaches it unreviewed (target <= 0.5%) {'PASS' if m['pass'] else 'FAIL'}; "
                    f"honest accounts held: {len(m['honest_accounts_held'])}")

        def truth_words(t: dict) -> str:
            return (f"retraining truth: held-out loss {t['held_out_loss_without']:.3f} without its rows, "
                    f"{t['held_out_loss_with']:.3f} with them ({'they helped' if t['rows_helped'] else 'they hurt'})")
        clean_built = platform.build(model, honest, tag="clean")
        clean = platform.payout(model, clean_built, queries)
        counts: dict[str, int] = {}
        for r in honest:
            counts[r.contributor] = counts.get(r.contributor, 0) + 1
        largest = max(counts, key=lambda c: (counts[c], c))
        one = clean.total(lambda c: c == largest)
        say(f"MiniLM + LoRA r=8: {len(honest)} honest rows from {len(sizes)} contributors, seq {seq}, {epochs} "
            f"epochs, accuracy {clean_accuracy:.2f} on the eval split; {n_queries} queries, "
            f"{clean.empty} of them empty (fallback paid)")
        say(f"  honest baseline: {largest} ({counts[largest]} rows) holds {one / n_queries:.2%} of the pool; "
            f"honest accounts held for review on the clean model: {len(clean.held)} of {len(counts)}")
        report["honest_accounts_held_clean"] = sorted(clean.held)
        # What the credit rules cost honest rows on the clean model (no adversary in it).
        credit = clean_built[0].manifest["credit"]
        honest_credit = {key: credit[key] for key in ("groups", "gradient_duplicate_pairs", "duplicate_rows_uncredited",
                                                      "rows_earning_fully", "rows_earning_nothing",
                                                      "mean_credit_weight")}
        report["honest_credit"] = honest_credit
        say(f"  honest rows' credit weights: mean {credit['mean_credit_weight']:.2f}, "
            f"{credit['rows_earning_fully']} of {len(honest)} earn fully, {credit['rows_earning_nothing']} earn "
            f"nothing ({credit['duplicate_rows_uncredited']} later duplicates); {credit['groups']} credit groups")
        sybil = {}
        for n_accounts in splits:
            members = [r.row_id for r in honest if r.contributor == largest]
            alias = {rid: f"{largest}~{j % n_accounts}" for j, rid in enumerate(members)}
            split = platform.pay(model, honest, queries, account=lambda r, alias=alias: alias.get(r.row_id, r.contributor),
                                 tag=f"split{n_accounts}")
            total = split.total(lambda c: c.startswith(f"{largest}~"))
            gain = total / one - 1 if one > 0 else (0.0 if total == 0 else float("inf"))
            sybil[str(n_accounts)] = {"total": total, "one_account": one, "empty": split.empty,
                                      **check(gain, TARGETS["sybil_gain"])}
            say(f"  sybil split into {n_accounts:>2} accounts: total {total:.4f} vs {one:.4f} in one account, "
                f"gain {gain:+.3%} (target <= {TARGETS['sybil_gain']:.0%}) "
                f"{'PASS' if sybil[str(n_accounts)]['pass'] else 'FAIL'}")
        by_size = sorted(counts, key=lambda c: (-counts[c], c))
        a, b = by_size[1], by_size[2]
        merged = platform.pay(model, honest, queries, account=lambda r: "merged" if r.contributor in (a, b)
                              else r.contributor, tag="merge")
        change = 0.0
        for before, after in zip(clean.pools, merged.pools):
            change = max(change, abs(after.get("merged", 0.0) - before.get(a, 0.0) - before.get(b, 0.0)))
            for c in set(before) | set(after):
                if c not in (a, b, "merged"):
                    change = max(change, abs(after.get(c, 0.0) - before.get(c, 0.0)))
        report["sybil"] = sybil
        report["merge"] = {"accounts": [a, b], **check(change, TARGETS["merge_change"])}
        say(f"  merge {a} + {b}: largest change of any pool share {change:.2e} (target <= 1e-6) "
            f"{'PASS' if report['merge']['pass'] else 'FAIL'}")

        # Junk lottery: random strings, random labels, one-row accounts.
        junk = accept([Row(f"j{i}", t, y, f"junk{i:03d}") for i, (t, y) in enumerate(random_strings(n_junk, 11))],
                      existing=honest)
        model = harness.trained(junk)
        paid = platform.pay(model, junk, queries, tag="junk")
        report["junk_lottery"] = {"rows": n_junk, "accounts": n_junk, "empty": paid.empty, "truth": truth("junk"),
                                  **money(paid, lambda c: c.startswith("junk"), "junk_lottery")}
        say(f"  junk lottery: {n_junk} random strings in {n_junk} one-row accounts: "
            f"{money_words(report['junk_lottery'])}; {paid.empty} queries empty; "
            f"{truth_words(report['junk_lottery']['truth'])}")

        # Volume spam: random words, random labels, one account.
        spam = accept([Row(f"s{i}", t, y, "spammer") for i, (t, y) in enumerate(random_words(n_spam, 12))],
                      existing=honest)
        model = harness.trained(spam)
        paid = platform.pay(model, spam, queries, tag="spam")
        report["volume_spam"] = {"rows": sum(r.contributor == "spammer" for r in spam), "empty": paid.empty,
                                 "truth": truth("spam"), **money(paid, lambda c: c == "spammer", "volume_spam")}
        say(f"  volume spam: {report['volume_spam']['rows']} random-word rows from one account: "
            f"{money_words(report['volume_spam'])}; {paid.empty} queries empty; "
            f"{truth_words(report['volume_spam']['truth'])}")

        # Copier: near-copies and paraphrases of the most-paid honest row.
        by_id = {r.row_id: r for r in honest}
        pool = sentences(4 * sum(sizes), seed=0)
        by_text = {s.text: s for s in pool}
        earned: dict[str, float] = {}
        for credits in clean.row_credit:
            for row_id, value in credits.items():
                earned[row_id] = earned.get(row_id, 0.0) + value
        target_row = by_id[max(earned, key=lambda r: (earned[r], r))]
        target = by_text[target_row.text]
        extra = targeted_queries(target, 10 if not args.quick else 6, seed=13)
        target_queries = harness.encode([s.text for s in query_sentences + extra],
                                        [s.label for s in query_sentences + extra])
        clean_t = platform.payout(harness.trained(honest), clean_built, target_queries)
        paid_queries = [q for q, credits in enumerate(clean_t.row_credit) if credits.get(target_row.row_id, 0) > 0]
        row_credit = clean_t.row_total(target_row.row_id, paid_queries)
        copies = [Row(f"x{i}", t, target.label, "copier") for i, t in enumerate(near_copies(target))]
        rewordings = [Row(f"y{i}", t, target.label, "copier") for i, t in enumerate(paraphrases(target))]
        copier_result = {"target_row": target_row.row_id, "target_contributor": target_row.contributor,
                         "target_text": target_row.text, "queries_that_paid_it": len(paid_queries),
                         "target_credit_clean": row_credit}
        for name, uploads in (("near_copies", copies), ("all", copies + rewordings)):
            training = accept(uploads, existing=honest)
            mine = [r for r in training if r.contributor == "copier"]
            linked = sum(r.cluster is not None and r.cluster == (target_row.cluster or target_row.row_id)
                         for r in mine)
            model = harness.trained(training)
            paid = platform.pay(model, training, target_queries, tag=f"copier-{name}")
            taken = paid.total(lambda c: c == "copier", paid_queries)
            after = paid.row_total(target_row.row_id, paid_queries)
            ratio = taken / row_credit if row_credit > 0 else float("inf")
            copier_result[name] = {"uploaded": len(uploads), "accepted": len(mine), "in_target_cluster": linked,
                                   "copier_credit": taken, "target_credit_after": after, "empty": paid.empty,
                                   **check(ratio, TARGETS["copier_ratio"])}
            say(f"  copier ({name.replace('_', ' ')}): {len(mine)} rows accepted ({linked} linked to the target's "
                f"cluster) of {target_row.row_id} ({target_row.contributor}, credit {row_credit:.4f} on "
                f"{len(paid_queries)} queries): copier took {taken:.4f} = {ratio:.2%} of it (target <= 5%) "
                f"{'PASS' if copier_result[name]['pass'] else 'FAIL'}; the row kept {after:.4f}")
        copier_result.update({k: v for k, v in copier_result["all"].items() if k in ("value", "target", "pass")})
        report["copier"] = copier_result

        # Poisoner: real sentences, wrong labels, one account.
        rng = random.Random(17)
        flipped = [Row(f"p{i}", s.text, (s.label + rng.randint(1, len(INTENTS) - 1)) % len(INTENTS), "poisoner")
                   for i, s in enumerate(spare[:n_poison])]
        training = accept(flipped, existing=honest)
        model = harness.trained(training)
        paid = platform.pay(model, training, queries, tag="poison")
        poisoner_money = money(paid, lambda c: c == "poisoner", "poisoner")
        try:
            flagged = harmful_row_ids(paid.index)
            caught = sum(r.row_id in flagged for r in training if r.contributor == "poisoner")
            false_flags = sum(r.row_id in flagged for r in training if r.contributor != "poisoner")
        except AttributeError:
            caught = false_flags = None
        honest_30 = min(counts, key=lambda c: (abs(counts[c] - n_poison), c))
        baseline = paid.total(lambda c: c == honest_30) / n_queries
        report["poisoner"] = {"rows": len(flipped), "flagged_harmful": caught, "honest_rows_flagged": false_flags,
                              "honest_baseline": {"contributor": honest_30, "rows": counts[honest_30],
                                                  "share": baseline},
                              "empty": paid.empty, "truth": truth("poison"), **poisoner_money}
        say(f"  poisoner: {len(flipped)} flipped-label rows from one account: {money_words(poisoner_money)}; "
            f"{caught} of its rows flagged harmful ({false_flags} honest rows flagged); honest baseline {honest_30} "
            f"({counts[honest_30]} rows) {baseline:.2%}; {truth_words(report['poisoner']['truth'])}")

    elapsed = time.perf_counter() - started
    report["wall_s"] = elapsed
    report["models_from_cache"] = harness.cached_models
    report["index_builds"] = platform.builds
    figures = [*report["sybil"].values(), report["merge"], report["junk_lottery"], report["volume_spam"],
               report["copier"], report["poisoner"]]
    report["all_pass"] = all(f["pass"] for f in figures)
    say(f"  {sum(f['pass'] for f in figures)}/{len(figures)} targets met; {platform.builds} index builds, "
        f"{harness.cached_models} models from cache; wall time {elapsed:.0f} s")
    if args.json:
        print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
