"""One real MiniLM LoRA model version for the whole attribution module set: six contributors, mixed
labels, a few planted wrong labels (Bob's); fine-tuned by the real ModelFactory path, whose registration queues
the index build through the signal (tasks run eagerly). Built once per module inside an outer
transaction that is rolled back at the end; each test runs in a savepoint inside it."""

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

BILLING = ["I was charged {a} twice for my {p} plan", "why is my invoice {a} this {t}",
           "please refund the {a} fee on my {p} subscription", "my card was billed {a} by mistake",
           "explain the {a} charge on my {t} statement", "cancel the {a} payment for the {p} plan"]
SHIPPING = ["my {i} has not arrived after {d} days", "where is the {i} I ordered last {t}",
            "the courier lost my {i} near {c}", "please ship the {i} to {c} instead",
            "tracking for my {i} has not moved in {d} days", "the {i} arrived broken in {c}"]
SLOTS = {"a": ["$12", "$49", "$5", "$120", "$19", "$7"], "p": ["basic", "premium", "family", "team", "student"],
         "t": ["month", "week", "quarter", "year"], "i": ["laptop", "parcel", "headphones", "monitor", "book", "phone"],
         "d": ["3", "5", "10", "two", "seven"], "c": ["Berlin", "Lagos", "Austin", "Osaka", "Lima", "Oslo"]}
FAST = {"epochs": 4, "batch_size": 8, "max_seq_length": 32, "eval_fraction": 0.25, "learning_rate": 2e-3}


def support_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = "billing" if len(rows) % 2 == 0 else "shipping"
        template = rng.choice(BILLING if label == "billing" else SHIPPING)
        text = template.format(**{k: rng.choice(v) for k, v in SLOTS.items()})
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    return rows


@dataclass
class World:
    alice: object
    bob: object
    charlie: object
    others: list
    datanet: object
    version: object  # DatanetVersion
    model: object  # ModelVersion
    media: Path
    flipped: set  # row uids whose label was planted wrong


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.test import TestCase, override_settings
    from transaction_support import rollback_block

    from attribution import services as attribution_services
    from datanets import services as datanet_services
    from datanets.models import Record
    from lineage.celery import app
    from models_registry import services as model_services

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("attribution-world")
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    with django_db_blocker.unblock(), override_settings(
        MEDIA_ROOT=root / "media", DATANETS_CACHE_DIR=root / "cache", TRAINING_WORK_DIR=root / "training",
        # 47 training rows, 8 of them flipped: the flips inflate the MAD, so at z=2 whether any row clears
        # the rule depended on the (secret, random) projection seed. z=1 always flags some rows; the test
        # checks the queue wiring with them and that the planted rows carry more harm on average.
        ATTRIBUTION_MISLABEL_Z=1.0,
    ):
        with rollback_block():
            users = {}
            for name in ("alice", "bob", "charlie", "dave", "erin", "frank"):
                user = get_user_model().objects.create_user(username=f"w-{name}", email=f"w-{name}@example.org",
                                                            password="correct-horse-battery-staple",
                                                            display_name=name.title())
                EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
                users[name] = user
            rows = support_rows(64, seed=3)
            # A few of Bob's rows carry the wrong label: valuation should find them.
            flipped_texts = set()
            for position in (21, 23, 26, 28, 31, 33, 36, 38):
                rows[position]["label"] = "shipping" if rows[position]["label"] == "billing" else "billing"
                flipped_texts.add(rows[position]["text"])
            parts = {"alice": rows[:20], "bob": rows[20:40], "charlie": rows[40:46], "dave": rows[46:52],
                     "erin": rows[52:58], "frank": rows[58:]}
            datanet = datanet_services.datanet_create(owner=users["alice"], name="Support intents",
                                                      task_type="text-classification", label_set=["billing", "shipping"])
            for name, part in parts.items():
                with TestCase.captureOnCommitCallbacks(execute=True):
                    datanet_services.contribution_create_from_rows(datanet=datanet, contributor=users[name], rows=part)
            datanet_services.records_review(datanet=datanet, reviewer=users["alice"],
                                            record_ids=datanet.records.values_list("pk", flat=True), decision="accept")
            version = datanet_services.version_publish(datanet=datanet, actor=users["alice"])
            with TestCase.captureOnCommitCallbacks(execute=True):
                job = model_services.fine_tune_create(owner=users["alice"], name="Support intents",
                                                      base_model=model_services.base_model_ensure_default(),
                                                      datanet_versions=[version], **FAST)
            job.refresh_from_db()
            assert job.state == "succeeded", job.error
            flipped = {r.row_uid for r in Record.objects.filter(datanet=datanet) if r.fields["text"] in flipped_texts}
            yield World(users["alice"], users["bob"], users["charlie"], [users[n] for n in ("dave", "erin", "frank")], datanet, version, job.model_version,
                        root / "media", flipped)
            attribution_services.cache_clear()
            transaction.set_rollback(True)
    app.conf.task_always_eager = eager


@pytest.fixture(autouse=True)
def _world_storage(request, _django_test_environment, settings):
    """The module's model and index files live in the module's media directory, not the test's own."""
    if "world" in request.fixturenames:
        settings.MEDIA_ROOT = request.getfixturevalue("world").media
    torch.set_num_threads(1)
