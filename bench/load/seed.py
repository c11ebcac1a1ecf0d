"""Seed a load-test database through the services: an owner, curators, contributors and API users (each with
its own API key), a public Datanet with a published version, a deployed, paid MiniLM classifier with its
attribution index, and for the streaming clients (`--stream-users`, one key each) a deployed, paid tiny Llama
instruction model (built from a config in `--model-dir`, fine-tuned on a small instruction Datanet, indexed).
Writes the credentials locust needs as JSON to `--out`.

Run by bench/load.py with the load test's environment (DATABASE_URL, ...) and CELERY_TASK_ALWAYS_EAGER=1, so
validation, training and the index build run here, in order.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage.settings")

PRICE = 10**15  # 0.001 OPEN per answer
CREDIT = 10**21  # 1,000 OPEN per API user: never runs out during a run
BILLING = ["I was charged twice", "refund my payment", "my invoice is wrong", "the card payment failed",
           "why was I billed again", "cancel the charge on my card"]
SHIPPING = ["where is my parcel", "the courier lost my package", "delivery is late", "tracking number does not work",
            "parcel arrived damaged", "change my delivery address"]


def stream_model(*, owner, model_dir: Path, epochs: int):
    """A paid tiny Llama instruction model, deployed: what the streaming clients stream from. Its own compute is
    negligible, so a stream's time is the serving path's (web tier, model server, network), not the model's."""
    from datanets import services as datanets
    from models_registry import services as registry
    from models_registry.models import BaseModel
    from models_registry.training import build_tiny_causal_model

    rows = [{"prompt": f"What is {a} plus {b}?", "response": f"{a + b}"} for a in range(6) for b in range(6)]
    path = build_tiny_causal_model(model_dir, [f"{r['prompt']} {r['response']}" for r in rows], arch="llama", seed=0)
    base = BaseModel.objects.create(name="Tiny Llama (load test)", slug="tiny-llama-load", source_kind="path",
                                    source_ref=str(path), architecture="llama", task_types=["instruction", "text"])
    datanet = datanets.datanet_create(owner=owner, name="Load Sums", task_type="instruction", visibility="public")
    datanets.contribution_create_from_rows(datanet=datanet, contributor=owner, rows=rows)  # validated eagerly
    datanets.records_review(datanet=datanet, reviewer=owner, record_ids=datanet.records.values_list("pk", flat=True),
                            decision="accept")
    version = datanets.version_publish(datanet=datanet, actor=owner)
    job = registry.fine_tune_create(owner=owner, name="Load sums", base_model=base, datanet_versions=[version],
                                    epochs=epochs, batch_size=8, max_seq_length=32, eval_fraction=0.2)
    job.refresh_from_db()
    if job.state != "succeeded":
        raise SystemExit(f"the seed's causal fine-tune did not succeed: {job.state} {job.error}")
    model = registry.model_version_update(version=job.model_version, actor=owner, price_per_inference=PRICE)
    return registry.model_version_set_deployed(version=model, actor=owner, deployed=True)


def seed(*, contributors: int, curators: int, api_users: int, stream_users: int, epochs: int, model_dir: Path) -> dict:
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from accounts.services import api_key_create
    from datanets import services as datanets
    from models_registry import services as registry
    from rewards import services as rewards

    def user(name):
        made = get_user_model().objects.create_user(username=name, email=f"{name}@load.lineage.local",
                                                    password="load-test-password-1", display_name=name.title())
        EmailAddress.objects.create(user=made, email=made.email, verified=True, primary=True)
        return made

    def key(owner, *scopes):
        return api_key_create(user=owner, name="load test", scopes=list(scopes)).secret

    owner = user("owner")
    datanet = datanets.datanet_create(owner=owner, name="Load Tickets", task_type="text-classification",
                                      visibility="public", label_set=["billing", "shipping"])
    rows = [{"text": f"{t} please help {i}", "label": "billing"} for i, t in enumerate(BILLING * 5)]
    rows += [{"text": f"{t} please help {i}", "label": "shipping"} for i, t in enumerate(SHIPPING * 5)]
    datanets.contribution_create_from_rows(datanet=datanet, contributor=owner, rows=rows)  # validated eagerly
    datanets.records_review(datanet=datanet, reviewer=owner, record_ids=datanet.records.values_list("pk", flat=True),
                            decision="accept")
    version = datanets.version_publish(datanet=datanet, actor=owner)

    job = registry.fine_tune_create(owner=owner, name="Load intents", base_model=registry.base_model_ensure_default(),
                                    datanet_versions=[version], epochs=epochs, batch_size=8, max_seq_length=32,
                                    eval_fraction=0.2, learning_rate=2e-3)
    job.refresh_from_db()
    if job.state != "succeeded":
        raise SystemExit(f"the seed fine-tune did not succeed: {job.state} {job.error}")
    model = registry.model_version_update(version=job.model_version, actor=owner, price_per_inference=PRICE)
    model = registry.model_version_set_deployed(version=model, actor=owner, deployed=True)

    curator_keys = []
    for n in range(curators):
        curator = user(f"curator{n}")
        datanets.membership_set(datanet=datanet, actor=owner, user=curator, role="curator")
        curator_keys.append(key(curator, "read", "contribute"))
    contributor_keys = [key(user(f"contributor{n}"), "read", "contribute") for n in range(contributors)]
    streamed = stream_model(owner=owner, model_dir=model_dir, epochs=1)

    def paying_keys(prefix: str, count: int) -> list[str]:
        keys = []
        for n in range(count):
            api_user = user(f"{prefix}{n}")
            rewards.credit_grant(actor=None, user=api_user, amount=CREDIT, reason="load test credit",
                                 idempotency_key=f"load:{prefix}:{n}")
            keys.append(key(api_user, "infer", "read"))
        return keys

    return {"datanet": datanet.slug, "model": model.slug, "stream_model": streamed.slug, "curators": curator_keys,
            "contributors": contributor_keys, "api_users": paying_keys("apiuser", api_users),
            "stream_users": paying_keys("streamer", stream_users)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--contributors", type=int, default=60)
    parser.add_argument("--curators", type=int, default=6)
    parser.add_argument("--api-users", type=int, default=20)
    parser.add_argument("--stream-users", type=int, default=32, help="one API key per streaming client")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model-dir", required=True, help="where the tiny Llama base is written")
    args = parser.parse_args()
    data = seed(contributors=args.contributors, curators=args.curators, api_users=args.api_users,
                stream_users=args.stream_users, epochs=args.epochs, model_dir=Path(args.model_dir))
    Path(args.out).write_text(json.dumps(data, indent=1))
    print(f"seeded: Datanet {data['datanet']}, models {data['model']} and {data['stream_model']} (streamed)")


if __name__ == "__main__":
    main()
