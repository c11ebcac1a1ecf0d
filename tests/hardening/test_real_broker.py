"""Issue #17, item 8a: every Lineage task through a real broker to a real worker.

Everywhere else tasks run eagerly, so no task's arguments are ever serialized and no route is ever taken. Here
one `celery -A lineage worker` process for the module (solo pool, all four queues) consumes this module's own
Redis database (11; the fault tests use 13, the ModelFactory worker-kill test 14), with Redis as result backend
too, and sees the test database: pytest-django's `transaction=True` commits every write, and the worker opens
the same database through `DATABASE_URL` (the per-run SQLite file in WAL mode on the embedded defaults,
PostgreSQL's test database in CI: `process_support.test_database_url`). A JSON-RPC chain (the `chain_node`
command's handler over an in-process py-evm chain) is shared by this process and the worker.

In this process the services queue their tasks exactly as in production (`delay_on_commit`, after the commit),
only onto this module's broker; tests also send tasks themselves, with the arguments the services gave. Each
published message is recorded with its routing key (`before_task_publish`), and every task's effect (or, sent
again, its idempotent no-op) is asserted. `COVERED` lists which test sends which task; it must equal the set of
registered Lineage tasks, so a new task without coverage fails `test_every_registered_task_is_covered`.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from browser_support import personal_sign
from celery.backends.redis import RedisBackend
from celery.contrib.django.task import DjangoTask
from celery.signals import before_task_publish
from django.db import transaction
from faults_support import CeleryWorker, ChainNode, wait_for
from process_support import test_database_url

from lineage.celery import app

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER = "redis://127.0.0.1:6379/11"
QUEUES = ("default", "gpu", "chain", "attribution")
OPEN = 10**18
PRICE = 10**15

# Which test sends each task through the broker (the task's queue is checked from its published message).
COVERED = {
    "accounts.tasks.platform_ping": "test_datanet_model_inference_and_fee_tasks",
    "datanets.tasks.contribution_validate_task": "test_datanet_model_inference_and_fee_tasks",
    "datanets.tasks.contribution_reviewed_email_task": "test_datanet_model_inference_and_fee_tasks",
    "models_registry.tasks.fine_tune_run_task": "test_datanet_model_inference_and_fee_tasks",
    "attribution.tasks.index_build_task": "test_datanet_model_inference_and_fee_tasks",
    "inference.tasks.inference_settle_task": "test_datanet_model_inference_and_fee_tasks",
    "rewards.tasks.fees_settle": "test_datanet_model_inference_and_fee_tasks",
    "insights.tasks.summaries_refresh_recent": "test_datanet_model_inference_and_fee_tasks",
    "rewards.tasks.chain_index_deposits": "test_chain_tasks",
    "rewards.tasks.epoch_close_scheduled": "test_chain_tasks",
    "rewards.tasks.chain_epoch_close": "test_chain_tasks",
    "rewards.tasks.chain_claim_relay": "test_chain_tasks",
    "rewards.tasks.chain_index_claims": "test_chain_tasks",
    "rewards.tasks.chain_reconcile": "test_chain_tasks",
    "governance.tasks.chain_index_governance": "test_chain_tasks",
    "governance.tasks.chain_wallet_action": "test_chain_tasks",
    "lineage.demo.tasks.demo_chain_story_task": "test_chain_tasks",
    "notifications.tasks.event_dispatch_task": "test_notification_tasks",
    "notifications.tasks.webhook_deliver_task": "test_notification_tasks",
    "retrieval.tasks.retrieval_index_build_task": "test_retrieval_index_build_task",
}

PUBLISHED: list[tuple[str, str]] = []  # (task name, routing key) of every message this process published


# Sent with an explicit queue by its caller (`seed_demo`: `apply_async(queue="chain")`), not routed by name.
EXPLICIT_QUEUE = {"lineage.demo.tasks.demo_chain_story_task": "chain"}


def expected_queue(name: str) -> str:
    if name in EXPLICIT_QUEUE:
        return EXPLICIT_QUEUE[name]
    if name == "inference.tasks.inference_settle_task":
        return "attribution"
    if name.startswith(("models_registry.tasks.", "attribution.tasks.", "retrieval.tasks.")):
        return "gpu"
    if ".tasks.chain_" in name:
        return "chain"
    return "default"


def registered_tasks() -> set[str]:
    app.loader.import_default_modules()  # what `celery worker` does at start
    return {name for name in app.tasks if not name.startswith("celery.")}  # Celery's own: chord_unlock, backend_cleanup...


def test_every_registered_task_is_covered():
    assert registered_tasks() == set(COVERED), "send every new task through the broker below (and list it here)"
    for name in set(COVERED) - set(EXPLICIT_QUEUE):
        assert app.amqp.router.route({}, name)["queue"].name == expected_queue(name), name


# --- The worker, the chain and the broker -------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-broker")
    return SimpleNamespace(media=root / "media", training=root / "training", cache=root / "cache",
                           var=root / "worker-var", log=root / "worker.log")


@pytest.fixture(scope="module")
def chain_node():
    node = ChainNode()
    yield node
    node.close()


@pytest.fixture(scope="module")
def worker(django_db_setup, chain_node, shared):
    redis.Redis.from_url(BROKER).flushdb()
    treasury = chain_node.client.local_chain.accounts[0]
    env = {
        **os.environ, "DATABASE_URL": test_database_url(), "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER, "CELERY_TASK_ALWAYS_EAGER": "0", "MEDIA_ROOT": str(shared.media),
        "TRAINING_WORK_DIR": str(shared.training), "LINEAGE_VAR_DIR": str(shared.var), "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "ATTRIBUTION_K": "256",
        "CHAIN_RPC_URL": chain_node.url, "CHAIN_PRIVATE_KEY": "0x" + bytes(treasury.key).hex(),
        "CHAIN_ID": str(chain_node.client.chain_id), "REWARDS_RELAY_THRESHOLD": "0", "GOVERNANCE_DEV_SIGNING": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend", "WEBHOOKS_ALLOW_PRIVATE_URLS": "1",
    }
    process = CeleryWorker(env, shared.log, ",".join(QUEUES)).start()
    try:
        wait_for(lambda: process.process.poll() is not None or b" ready." in shared.log.read_bytes(), 120,
                 "the worker to start", shared.log, interval=0.2)
        assert process.process.poll() is None, shared.log.read_text()[-3000:]
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def _shared_storage(_django_test_environment, settings, shared):
    """This process and the worker read and write the same files (uploads, adapters, index shards)."""
    settings.MEDIA_ROOT, settings.TRAINING_WORK_DIR, settings.DATANETS_CACHE_DIR = (shared.media, shared.training,
                                                                                     shared.cache)


@pytest.fixture(scope="module", autouse=True)
def _record_publishes():
    def record(sender=None, routing_key=None, **kwargs):
        PUBLISHED.append((sender, routing_key))
    before_task_publish.connect(record, weak=False)
    yield
    before_task_publish.disconnect(record)


class Broker:
    """Publishes to this module's broker and reads the results the worker stores there."""

    def __init__(self, worker: CeleryWorker, log: Path) -> None:
        self.worker, self.log = worker, log
        self.backend = RedisBackend(app=app, url=BROKER)
        self.connection = app.connection_for_write(BROKER)
        self.queued: list[tuple[str, str]] = []  # (task name, task id) queued by services in this process

    def send(self, task, *args, **options) -> str:
        result = task.apply_async(args=list(args), connection=self.connection, **options)
        return result.id

    def queued_id(self, name: str) -> str:
        ids = [task_id for queued, task_id in self.queued if queued == name]
        assert ids, f"{name} was not queued; queued: {[n for n, _ in self.queued]}"
        return ids[-1]

    def result(self, task_id: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            meta = self.backend.get_task_meta(task_id)
            if meta["status"] == "SUCCESS":
                return meta["result"]
            if meta["status"] in ("FAILURE", "REVOKED"):
                pytest.fail(f"task {task_id} failed in the worker: {meta.get('traceback') or meta['result']}\n"
                            f"{self.log.read_text(errors='replace')[-3000:]}")
            if self.worker.process.poll() is not None:
                pytest.fail(f"the worker exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        pytest.fail(f"no result for {task_id} after {timeout:.0f}s\n{self.log.read_text(errors='replace')[-3000:]}")

    def run(self, task, *args, timeout: float = 120, **options):
        return self.result(self.send(task, *args, **options), timeout)

    def close(self) -> None:
        self.connection.release()


@pytest.fixture
def broker(worker, shared, monkeypatch):
    """Services in this process queue onto this module's broker, on commit, as `delay_on_commit` does."""
    app.conf.task_always_eager = False  # the conftest puts it back after the test
    sender = Broker(worker, shared.log)

    def delay_on_commit(task, *args, **kwargs):
        def publish():
            sender.queued.append((task.name, task.apply_async(args=args, kwargs=kwargs,
                                                              connection=sender.connection).id))
        transaction.on_commit(publish)

    monkeypatch.setattr(DjangoTask, "delay_on_commit", delay_on_commit)
    yield sender
    sender.close()


def assert_sent_as_routed(test_name: str) -> None:
    published = dict(PUBLISHED)
    for name, test in COVERED.items():
        if test == test_name:
            assert name in published, f"{name} never went through the broker"
            assert published[name] == expected_queue(name), (name, published[name])


def poll(predicate, what: str, log: Path, timeout: float = 180):
    return wait_for(predicate, timeout, what, log, interval=0.2)


# --- Datanets, ModelFactory, attribution, inference, fees, insights --------------------------------------------

ROWS = [{"text": f"{text} please help {n}", "label": label} for n in range(3) for text, label in (
    ("I was charged twice", "billing"), ("refund my payment", "billing"), ("my invoice is wrong", "billing"),
    ("the card payment failed", "billing"), ("where is my parcel", "shipping"),
    ("the courier lost my package", "shipping"), ("delivery is late", "shipping"),
    ("parcel arrived damaged", "shipping"))]


def test_datanet_model_inference_and_fee_tasks(broker, worker, shared, alice, dora, charlie):
    from accounts.tasks import platform_ping
    from attribution.models import AttributionIndex, AttributionReceipt
    from attribution.tasks import index_build_task
    from datanets import services as datanet_services
    from datanets.models import Contribution, Record
    from datanets.tasks import contribution_validate_task
    from inference import services as inference_services
    from inference.models import InferenceRecord
    from inference.tasks import inference_settle_task
    from insights.models import MetricFact
    from insights.tasks import summaries_refresh_recent
    from models_registry import services as registry_services
    from models_registry.models import ModelVersion
    from models_registry.tasks import fine_tune_run_task
    from rewards import services as rewards_services
    from rewards.models import PendingFee, Settlement
    from rewards.tasks import fees_settle

    token = uuid.uuid4().hex
    assert broker.run(platform_ping, token) == {"token": token, "worker_pid": worker.process.pid}

    # Validation: queued on commit by the upload, run by the worker.
    datanet = datanet_services.datanet_create(owner=alice, name="Broker intents", task_type="text-classification",
                                              visibility="public", label_set=["billing", "shipping"])
    contribution = datanet_services.contribution_create_from_rows(datanet=datanet, contributor=dora, rows=ROWS)
    validated = broker.result(broker.queued_id("datanets.tasks.contribution_validate_task"))
    assert validated == {"contribution": contribution.pk, "state": "in_review"}
    assert Record.objects.filter(contribution=contribution).count() == len(ROWS)
    # Delivered again (a redelivery): nothing changes.
    assert broker.run(contribution_validate_task, contribution.pk) == validated
    assert Record.objects.filter(contribution=contribution).count() == len(ROWS)

    # The review finishes the contribution; the worker emails its contributor (console backend: its log).
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                    record_ids=Record.objects.filter(datanet=datanet).values_list("pk", flat=True))
    assert broker.result(broker.queued_id("datanets.tasks.contribution_reviewed_email_task")) is None
    mail = shared.log.read_text(errors="replace")
    assert "Subject: Your contribution to Broker intents has been reviewed" in mail and "To: dora@example.org" in mail
    assert Contribution.objects.get(pk=contribution.pk).state == "done"
    version = datanet_services.version_publish(datanet=datanet, actor=alice)

    # Fine-tune on the gpu queue; registering the model version makes the worker queue its index build.
    job = registry_services.fine_tune_create(
        owner=alice, name="broker intents", base_model=registry_services.base_model_ensure_default(),
        datanet_versions=[version], epochs=1, batch_size=8, max_seq_length=24, eval_fraction=0.25)
    trained = broker.result(broker.queued_id("models_registry.tasks.fine_tune_run_task"), timeout=420)
    assert trained == {"job": job.pk, "state": "succeeded"}, trained
    model = ModelVersion.objects.get(job=job)
    poll(lambda: ModelVersion.objects.get(pk=model.pk).attribution_status in ("ready", "failed"),
         "the worker's own index build", shared.log, timeout=420)
    index = AttributionIndex.objects.get(model_version=model)
    assert index.state == "ready", index.error
    # Both sent again: the finished job and the ready index are returned as they are.
    assert broker.run(fine_tune_run_task, job.pk) == trained
    assert broker.run(index_build_task, model.pk) == {"model_version": model.pk, "state": "ready",
                                                       "index_hash": index.index_hash}
    assert ModelVersion.objects.filter(job=job).count() == AttributionIndex.objects.count() == 1

    # An answer on the queued default: its receipt id is reserved at once; receipt and fee come from the
    # attribution queue's worker, under that id.
    model = registry_services.model_version_update(version=model, actor=alice, price_per_inference=PRICE)
    model = registry_services.model_version_set_deployed(version=model, actor=alice, deployed=True)
    rewards_services.credit_grant(actor=None, user=charlie, amount=10 * PRICE, reason="broker test")
    question, label = "I was charged twice please help 1", "billing"
    inference = inference_services.inference_begin(user=charlie, api_key=None, endpoint="chat.completions",
                                                   model=model.slug)
    settled = inference_services.inference_complete(inference=inference, input_text=question, output=label,
                                                    tokens_in=7, tokens_out=1, slot=None)
    assert settled.receipt_status == "queued" and settled.receipt_id
    assert settled.receipt_url.endswith(f"/attribution/receipts/{settled.receipt_id}/")
    assert not AttributionReceipt.objects.filter(receipt_id=settled.receipt_id).exists()  # not computed here
    task_id = broker.queued_id("inference.tasks.inference_settle_task")
    assert broker.result(task_id, timeout=300) == inference.inference_id
    receipt = AttributionReceipt.objects.get(receipt_id=settled.receipt_id)
    assert (receipt.inference_id, receipt.requester_id, receipt.model_version_id) == (
        inference.inference_id, charlie.pk, model.pk)
    record = InferenceRecord.objects.get(pk=inference.inference_id)
    assert (record.receipt_id, record.fee) == (settled.receipt_id, PRICE) and record.finished_at is not None
    # The worker's fee_record queued its own settlement batch (fees_settle) on commit.
    poll(lambda: Settlement.objects.filter(inference_id=inference.inference_id).exists(), "the fee's settlement",
         shared.log, timeout=60)
    assert Settlement.objects.get(inference_id=inference.inference_id).receipt_id == settled.receipt_id
    # The same message again: settled already, nothing new.
    assert broker.run(inference_settle_task, inference.inference_id, question, label) == inference.inference_id
    assert AttributionReceipt.objects.filter(inference_id=inference.inference_id).count() == 1
    assert Settlement.objects.filter(inference_id=inference.inference_id).count() == 1

    # A fee recorded here, booked by the worker.
    rewards_services.fee_record(inference_id="broker-fee", payer=charlie, model_owner=alice, fee=PRICE,
                                contributor_shares={dora.pk: 1_000_000}, model_version_hash=model.version_hash,
                                settle_soon=False)
    assert broker.run(fees_settle) == 1
    assert Settlement.objects.filter(inference_id="broker-fee").exists() and not PendingFee.objects.exists()

    # Dashboards: ignore_result in production; asked for here, so its report comes back through the backend.
    report = broker.run(summaries_refresh_recent, ignore_result=False)
    assert report["facts"] > 0 and MetricFact.objects.filter(metric="rewards.fees").exists()
    assert_sent_as_routed("test_datanet_model_inference_and_fee_tasks")


# --- The chain queue -----------------------------------------------------------------------------------------

def test_chain_tasks(broker, worker, shared, chain_node, settings, make_user, dora, charlie):
    from governance.chainio import contracts as governance_contracts
    from governance.chainio import deployment_ensure as governance_deployment
    from governance.models import ActionState, GovernanceDeployment, WalletAction
    from governance.services import delegate_request
    from governance.tasks import chain_index_governance
    from lineage.demo.tasks import demo_chain_story_task
    from rewards import ledger
    from rewards import services as rewards_services
    from rewards.chain import ChainClient, DistributorContract, TokenContract
    from rewards.chainio import deployment_ensure, set_chain_client
    from rewards.models import AccountKind, ClaimRelay, Epoch, ReconciliationIssue
    from rewards.selectors import claims_for
    from rewards.tasks import (
        chain_epoch_close,
        chain_index_claims,
        chain_index_deposits,
        chain_reconcile,
        epoch_close_scheduled,
    )

    # Dora contributes, charlie pays; the model's owner is not alice: the demo task below creates the demo's
    # people, whose user names include alice and bob.
    owen = make_user("owen")
    accounts = chain_node.client.local_chain.accounts
    treasury, wallets = accounts[0], {dora.pk: accounts[2], owen.pk: accounts[3]}
    direct = ChainClient.from_rpc(chain_node.url, treasury.key)
    set_chain_client(direct)
    try:
        settings.CHAIN_ID = direct.chain_id
        settings.GOVERNANCE_DEV_SIGNING = True
        deployment = deployment_ensure(client=direct)
        token = TokenContract(direct, deployment.token_address)
        distributor = DistributorContract(direct, deployment.distributor_address)
        for user in (dora, owen):
            issued = rewards_services.wallet_nonce_issue(user=user, address=wallets[user.pk].address)
            rewards_services.wallet_link(user=user, message=issued.message,
                                         signature=personal_sign(wallets[user.pk], issued.message))

        # A deposit from Dora's wallet becomes her credit.
        token.transfer(wallets[dora.pk].address, 5 * OPEN, sender=treasury)
        token.transfer(deployment.deposit_address, 3 * OPEN, sender=wallets[dora.pk])
        assert broker.run(chain_index_deposits) == 1
        assert broker.run(chain_index_deposits) == 0  # indexed once
        assert ledger.balance(kind=AccountKind.CREDIT, user=dora) == 3 * OPEN

        # Earnings, then beat's weekly entry point: it queues the close itself, which the worker runs.
        rewards_services.credit_grant(actor=None, user=charlie, amount=10 * OPEN, reason="broker test")
        for n in range(3):
            rewards_services.fee_settle(inference_id=f"chain-fee-{n}", payer=charlie, model_owner=owen, fee=2 * OPEN,
                                        contributor_shares={dora.pk: 1_000_000}, model_version_hash="ef" * 32)
        earned = (ledger.balance(kind=AccountKind.EARNINGS, user=dora)
                  + ledger.balance(kind=AccountKind.OWNER_EARNINGS, user=owen))
        assert 0 < earned < 6 * OPEN  # the protocol's part stays in the treasury
        assert broker.run(epoch_close_scheduled) is None
        poll(lambda: Epoch.objects.filter(state="closed").exists(), "the queued epoch close", shared.log)
        epoch = Epoch.objects.get()
        assert epoch.total_cumulative == earned and distributor.epoch() == 1
        # Run again: nothing left to pay, no second epoch.
        assert broker.run(chain_epoch_close, None) == {"epoch": None, "state": None}
        assert Epoch.objects.count() == 1

        # "Claim for me" for Dora: queued on commit, sent by the worker.
        asked = rewards_services.claim_relay_request(user=dora)
        relayed = broker.result(broker.queued_id("rewards.tasks.chain_claim_relay"))
        relay = ClaimRelay.objects.get(pk=asked.relay.pk)
        assert relayed == {"relay": relay.pk, "state": "done", "tx_hash": relay.tx_hash} and relay.tx_hash
        dora_claimed = ledger.balance(kind=AccountKind.PAID_OUT, user=dora)
        assert dora_claimed > 0 and token.balance_of(wallets[dora.pk].address) == 2 * OPEN + dora_claimed
        # Owen claims from his own wallet; the worker's indexer books it.
        (claim,) = claims_for(user=owen)
        distributor.claim(claim["address"], claim["cumulative_amount"], [bytes.fromhex(p[2:]) for p in claim["proof"]],
                          sender=wallets[owen.pk])
        assert broker.run(chain_index_claims) == 1
        assert ledger.balance(kind=AccountKind.PAID_OUT, user=owen) == claim["cumulative_amount"] > 0
        assert broker.run(chain_reconcile) == 0 and not ReconciliationIssue.objects.exists()

        # Governance: the indexer (deploying governance on this development chain), then a delegation signed by
        # the development key of Owen's wallet, queued on commit and sent by the worker.
        assert broker.run(chain_index_governance) >= 0
        assert GovernanceDeployment.objects.filter(chain_id=direct.chain_id).count() == 1  # deployed, recorded
        assert broker.run(chain_index_governance) == 0  # everything on chain already mirrored
        action = delegate_request(user=owen, amount=0)
        assert action.state == ActionState.QUEUED
        assert broker.result(broker.queued_id("governance.tasks.chain_wallet_action")) == ActionState.DONE
        assert WalletAction.objects.get(pk=action.pk).state == ActionState.DONE
        votes = governance_contracts(governance_deployment(client=direct), direct).votes
        assert votes.delegates(wallets[owen.pk].address) == wallets[owen.pk].address

        # The demo's chain step finds its story done (an epoch closed, nothing left to claim) and does nothing.
        assert broker.run(demo_chain_story_task, queue="chain") == "already closed"
        assert Epoch.objects.count() == 1
        assert ledger.ledger_check().ok
    finally:
        set_chain_client(None)
    assert_sent_as_routed("test_chain_tasks")


# --- Notifications: an event dispatched and a webhook delivered by the worker ---------------------------------

def test_notification_tasks(broker, worker, shared, alice, dora):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from datanets import services as datanet_services
    from notifications.catalogue import TEST_EVENT
    from notifications.models import Event, WebhookDelivery
    from notifications.services import webhook_create, webhook_send_test
    from notifications.signing import signature
    from notifications.tasks import event_dispatch_task, webhook_deliver_task

    received = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            received.append((dict(self.headers.items()), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = webhook_create(owner=alice, url=f"http://127.0.0.1:{server.server_address[1]}/hook",
                              events=["version.published"])
        # A test event: queued on commit by the service onto the broker, delivered and signed by the worker.
        delivery = webhook_send_test(webhook=hook, actor=alice)
        outcome = broker.result(broker.queued_id("notifications.tasks.webhook_deliver_task"))
        assert outcome["state"] == "delivered" and outcome["status_code"] == 204, outcome
        headers, body = received[-1]
        stamp, v1 = (part.split("=", 1)[1] for part in headers["X-Lineage-Signature"].split(","))
        assert v1 == signature(secret=hook.secret, timestamp=int(stamp), body=body)
        assert json.loads(body)["type"] == TEST_EVENT
        assert broker.run(webhook_deliver_task, delivery.pk)["state"] == "delivered"  # again: sent once
        assert len(received) == 1

        # A version published: the worker builds the event once and delivers it to the subscribed webhook.
        datanet = datanet_services.datanet_create(owner=alice, name="Broker hooks", task_type="text-classification",
                                                  visibility="public", label_set=["billing", "shipping"])
        contribution = datanet_services.contribution_create_from_rows(datanet=datanet, contributor=dora, rows=ROWS)
        broker.result(broker.queued_id("datanets.tasks.contribution_validate_task"))
        datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                        record_ids=contribution.records.values_list("pk", flat=True))
        version = datanet_services.version_publish(datanet=datanet, actor=alice)
        dispatched = broker.run(event_dispatch_task, "version.published", version.pk)
        assert dispatched["kind"] == "version.published" and dispatched["event"]
        assert broker.run(event_dispatch_task, "version.published", version.pk) == dispatched  # once per event
        assert Event.objects.filter(public_id=dispatched["event"]).count() == 1
        poll(lambda: WebhookDelivery.objects.filter(event__public_id=dispatched["event"], state="delivered").exists(),
             "the version event's delivery", shared.log, timeout=60)
        assert json.loads(received[-1][1])["type"] == "version.published"
    finally:
        server.shutdown()
        server.server_close()
    assert_sent_as_routed("test_notification_tasks")


# --- Retrieval: a published document version's index, built by the worker on the gpu queue ---------------------

def test_retrieval_index_build_task(broker, worker, shared, alice, dora):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datanets import services as datanet_services
    from retrieval.models import RetrievalIndex
    from retrieval.tasks import retrieval_index_build_task

    datanet = datanet_services.datanet_create(owner=alice, name="Broker documents", task_type="documents",
                                              visibility="public")
    guide = (b"# Harbour guide\n\n## Tides\n\nThe Fennick ferry leaves two hours after high tide, every day.\n\n"
             b"## Radio\n\nCall the harbour master on channel 16 before leaving port.\n")
    contribution = datanet_services.contribution_create_from_file(
        datanet=datanet, contributor=dora, uploaded_file=SimpleUploadedFile("guide.md", guide))
    assert broker.result(broker.queued_id("datanets.tasks.contribution_validate_task"))["state"] == "in_review"
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                    record_ids=contribution.records.values_list("pk", flat=True))
    version = datanet_services.version_publish(datanet=datanet, actor=alice)
    built = broker.result(broker.queued_id("retrieval.tasks.retrieval_index_build_task"), timeout=300)
    index = RetrievalIndex.objects.get(version=version)
    assert built == {"version": version.pk, "state": "ready", "index_hash": index.index_hash}, index.error
    assert broker.run(retrieval_index_build_task, version.pk) == built  # delivered again: the ready index stays
    assert_sent_as_routed("test_retrieval_index_build_task")
