"""A real Celery worker is killed with SIGKILL in the middle of a task; the broker (Redis, this suite's own
database, a 3 s visibility timeout) redelivers the unacknowledged message to a second worker, which must
finish the work so that, in effect, it ran exactly once.

Covered here: contribution validation, attribution index build, epoch close (with its on-chain
transactions). Training is covered by tests/models_registry/test_worker_kill.py (same approach: the job
resumes from its last checkpoint and registers one model version).

The second worker is started after the kill, once the visibility timeout has passed: its first sweep of
unacknowledged messages finds the killed worker's message (kombu sweeps again only about every 100 s).
"""

import json
import random

import pytest
from browser_support import personal_sign
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db.models import Count
from faults_support import (
    CeleryWorker,
    ChainNode,
    Fault,
    FaultyRpcProxy,
    calls_function,
    flush_broker,
    send_task,
    wait_for,
    worker_env,
)

from accounts.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
OPEN = 10**18

WORDS = ("refund card invoice parcel courier delivery tracking address payment charge plan account login "
         "password screen crash order box label weekend monday friday morning evening quickly twice late "
         "broken missing wrong damaged blue green large small").split()


def _rows(n: int, seed: int = 7) -> tuple[bytes, dict]:
    """n JSONL rows: unique valid rows, plus a few bad labels and exact duplicates."""
    rng = random.Random(seed)
    lines, valid, bad, dups = [], 0, 0, 0
    for i in range(n):
        if i % 97 == 5:
            lines.append({"text": f"row {i} with a label nobody declared", "label": "weather"})
            bad += 1
        elif i % 89 == 7 and lines:
            lines.append(dict(lines[0]))
            dups += 1
        else:
            words = " ".join(rng.choice(WORDS) for _ in range(9))
            lines.append({"text": f"ticket {i}: {words}", "label": rng.choice(["billing", "shipping"])})
            valid += 1
    payload = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return payload, {"valid": valid, "bad": bad, "duplicates": dups}


@pytest.fixture
def workers():
    started = []

    def start(env, log, queues):
        worker = CeleryWorker(env, log, queues).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_worker_killed_mid_validation_redelivers_and_writes_every_row_once(alice, settings, tmp_path, monkeypatch,
                                                                           workers):
    from datanets import services as datanet_services
    from datanets.models import Contribution, ContributionState, Record, RowError
    from datanets.tasks import contribution_validate_task

    datanet = datanet_services.datanet_create(owner=alice, name="Tickets", task_type="text-classification",
                                              visibility="public", label_set=["billing", "shipping"])
    payload, expected = _rows(20_000)  # several seconds of work: the kill lands mid-way
    monkeypatch.setattr(contribution_validate_task, "delay_on_commit", lambda *args, **kwargs: None)
    contribution = datanet_services.contribution_create_from_file(
        datanet=datanet, contributor=alice, uploaded_file=SimpleUploadedFile("tickets.jsonl", payload))
    flush_broker()
    env = worker_env(settings, tmp_path)
    log = tmp_path / "workers.log"
    first = workers(env, log, "default")
    send_task(contribution_validate_task, contribution.pk, queue="default")

    wait_for(lambda: Contribution.objects.get(pk=contribution.pk).state == ContributionState.VALIDATING, 120,
             "validation to be under way", log, interval=0.05)
    first.kill9()
    killed_at = Contribution.objects.get(pk=contribution.pk)
    assert killed_at.state == ContributionState.VALIDATING and killed_at.progress_done < killed_at.progress_total
    assert not Record.objects.filter(contribution=contribution).exists()  # nothing half-written
    first.wait_until_redeliverable()
    workers(env, log, "default")

    wait_for(lambda: Contribution.objects.get(pk=contribution.pk).state != ContributionState.VALIDATING, 150,
             "the redelivered validation to finish", log)
    contribution.refresh_from_db()
    assert contribution.state == ContributionState.IN_REVIEW, log.read_text()[-3000:]
    assert contribution.rows_total == sum(expected.values())
    assert contribution.rows_accepted == expected["valid"] == Record.objects.filter(contribution=contribution).count()
    assert contribution.rows_rejected == expected["bad"] and contribution.rows_duplicate == expected["duplicates"]
    assert RowError.objects.filter(contribution=contribution).count() == expected["bad"] + expected["duplicates"]
    # Each row exactly once, and one validation recorded.
    assert not Record.objects.filter(contribution=contribution).values("row_number").annotate(
        n=Count("id")).filter(n__gt=1).exists()
    assert AuditEvent.objects.filter(action="contribution.validated", object_id=str(contribution.pk)).count() == 1


def test_worker_killed_mid_index_build_rebuilds_once_and_scores(alice, dora, intent_rows, publish, settings, tmp_path,
                                                               workers, django_capture_on_commit_callbacks):
    from attribution import services as attribution_services
    from attribution.models import AttributionIndex, IndexState
    from attribution.tasks import index_build_task
    from models_registry import services as registry_services

    settings.ATTRIBUTION_BUILD_ON_REGISTER = False  # the build goes to the worker below, not in-process
    version = publish(alice, intent_rows(), contributor=dora)
    with django_capture_on_commit_callbacks(execute=True):
        job = registry_services.fine_tune_create(
            owner=alice, name="kill-index", base_model=registry_services.base_model_ensure_default(),
            datanet_versions=[version], epochs=1, batch_size=8, max_seq_length=24, eval_fraction=0.25)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    model = job.model_version
    flush_broker()
    env = worker_env(settings, tmp_path, ATTRIBUTION_K=256)
    log = tmp_path / "workers.log"
    first = workers(env, log, "gpu")
    send_task(index_build_task, model.pk, queue="gpu")
    wait_for(lambda: AttributionIndex.objects.filter(model_version=model, state=IndexState.BUILDING).exists(), 120,
             "the index build to start", log, interval=0.05)
    first.kill9()
    index = AttributionIndex.objects.get(model_version=model)
    assert index.state == IndexState.BUILDING and index.attempts == 1 and not index.index_hash
    first.wait_until_redeliverable()
    workers(env, log, "gpu")

    wait_for(lambda: AttributionIndex.objects.get(model_version=model).state != IndexState.BUILDING, 150,
             "the redelivered build to finish", log)
    index.refresh_from_db()
    assert index.state == IndexState.READY, index.error + log.read_text()[-3000:]
    assert index.attempts == 2 and index.index_hash and index.row_count > 0
    starts = AuditEvent.objects.filter(action="attribution.index_build_start", object_id=str(index.pk))
    assert [e.details["after_crash"] for e in starts.order_by("pk")] == [False, True]
    assert AuditEvent.objects.filter(action="attribution.index_ready", object_id=str(index.pk)).count() == 1
    model.refresh_from_db()
    assert model.attribution_status == IndexState.READY
    # The rebuilt index is whole: it scores an answer and credits the contributor of the rows.
    receipt = attribution_services.receipt_create(model_version=model, input_text="I was charged twice please help",
                                                  output="billing", inference_id="after-kill")
    assert receipt.top_rows and {str(row["contributor_id"]) for row in receipt.top_rows} == {str(dora.pk)}


# Longer than the redelivery takes here (a second worker's boot): the redelivered close finds the dead
# worker's lease still held, as it would at once on a broker that redelivers immediately (RabbitMQ).
LEASE_S = 40


def test_worker_killed_mid_epoch_close_resumes_and_pays_once(dora, alice, charlie, settings, tmp_path, workers):
    from rewards import ledger
    from rewards import services as rewards_services
    from rewards.chain import ChainClient, DistributorContract, TokenContract
    from rewards.chainio import deployment_ensure, set_chain_client
    from rewards.models import AccountKind, Epoch, EpochState
    from rewards.tasks import chain_epoch_close

    node = ChainNode()
    proxy = FaultyRpcProxy(node.url)
    treasury = node.client.local_chain.accounts[0]
    direct = ChainClient.from_rpc(node.url, treasury.key)
    set_chain_client(direct)
    try:
        settings.CHAIN_ID = direct.chain_id
        deployment = deployment_ensure(client=direct)  # deploys and records token + distributor
        token = TokenContract(direct, deployment.token_address)
        distributor = DistributorContract(direct, deployment.distributor_address)
        wallets = {dora.pk: node.client.local_chain.accounts[2], alice.pk: node.client.local_chain.accounts[3]}
        for user in (dora, alice):
            issued = rewards_services.wallet_nonce_issue(user=user, address=wallets[user.pk].address)
            rewards_services.wallet_link(user=user, message=issued.message,
                                         signature=personal_sign(wallets[user.pk], issued.message))
        rewards_services.credit_grant(actor=None, user=charlie, amount=50 * OPEN, reason="fault tests")
        for n in range(3):
            rewards_services.fee_settle(inference_id=f"kill-close-{n}", payer=charlie, model_owner=alice,
                                        fee=2 * OPEN + n, contributor_shares={dora.pk: 1_000_000},
                                        model_version_hash="ef" * 32, receipt_id=f"r{n}")

        # The worker's root transaction reaches the chain and is mined; its answer is held until the worker
        # has been killed: the database still says "funded" while the chain already has the root.
        held = proxy.inject(Fault("hold", "eth_sendRawTransaction", calls_function(distributor, "setMerkleRoot")))
        flush_broker()
        env = worker_env(settings, tmp_path, CHAIN_RPC_URL=proxy.url, CHAIN_PRIVATE_KEY="0x" + bytes(treasury.key).hex(),
                         CHAIN_ID=direct.chain_id, REWARDS_RELAY_THRESHOLD=1, REWARDS_EPOCH_LEASE_S=LEASE_S,
                         CHAIN_RECEIPT_TIMEOUT_S=20)
        log = tmp_path / "workers.log"
        first = workers(env, log, "chain")
        send_task(chain_epoch_close, None, queue="chain")
        wait_for(held.hit.is_set, 120, "the root transaction to be sent", log, interval=0.05)
        first.kill9()
        held.release.set()
        epoch = Epoch.objects.get()
        assert epoch.state == EpochState.FUNDED and distributor.epoch() == 1  # the crash window
        first.wait_until_redeliverable()
        workers(env, log, "chain")

        wait_for(lambda: Epoch.objects.get().state == EpochState.CLOSED, 150, "the redelivered close to finish", log)
        epoch = Epoch.objects.get()
        assert epoch.relayed_accounts == 2 and epoch.lease_owner == ""
        fundings = list(token.contract.events.Transfer.get_logs(
            from_block=0, argument_filters={"from": treasury.address, "to": distributor.address}))
        assert len(fundings) == 1 and fundings[0]["args"]["value"] == epoch.total_cumulative
        assert len(distributor.contract.events.RootUpdated.get_logs(from_block=0)) == 1
        rewards_services.claims_index()
        for user in (dora, alice):
            address = wallets[user.pk].address
            assert token.balance_of(address) == distributor.claimed(address) == ledger.balance(
                kind=AccountKind.PAID_OUT, user=user) > 0
            assert len(distributor.contract.events.Claimed.get_logs(
                from_block=0, argument_filters={"account": address})) == 1
        assert token.balance_of(distributor.address) == 0
        call_command("ledger_check")
        call_command("chain_reconcile")
    finally:
        set_chain_client(None)
        proxy.close()
        node.close()
