"""Seed a load-test database through the services: an owner, curators, contributors and API users (each with
its own API key), a public Datanet with a published version, and a deployed, paid MiniLM classifier with its
attribution index. Writes the credentials locust needs as JSON to `--out`.

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


def seed(*, contributors: int, curators: int, api_users: int, epochs: int) -> dict:
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
    infer_keys = []
    for n in range(api_users):
        api_user = user(f"apiuser{n}")
        rewards.credit_grant(actor=None, user=api_user, amount=CREDIT, reason="load test credit",
                             idempotency_key=f"load:{n}")
        infer_keys.append(key(api_user, "infer", "read"))
    return {"datanet": datanet.slug, "model": model.slug, "curators": curator_keys, "contributors": contributor_keys,
            "api_users": infer_keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--contributors", type=int, default=60)
    parser.add_argument("--curators", type=int, default=6)
    parser.add_argument("--api-users", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = seed(contributors=args.contributors, curators=args.curators, api_users=args.api_users, epochs=args.epochs)
    Path(args.out).write_text(json.dumps(data, indent=1))
    print(f"seeded: Datanet {data['datanet']}, model {data['model']}")


if __name__ == "__main__":
    main()
