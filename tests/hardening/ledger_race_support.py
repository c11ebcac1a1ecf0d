"""The racers of tests/hardening/test_ledger_concurrency_postgres.py: functions run in spawned processes, each a
whole Django process with its own PostgreSQL connection (the test's own database, whatever the suite's default
database is). `init` configures a process; the `race_*` functions wait at a shared barrier, so every racer
calls the service at the same moment; the others seed the database and report what it holds.

Everything here goes through the real services (`rewards.services`, `rewards.ledger`); nothing is patched."""

from __future__ import annotations

import os

_barrier = None
BARRIER_TIMEOUT_S = 60


def init(env: dict, barrier) -> None:
    global _barrier
    os.environ.update(env)
    import django

    django.setup()
    _barrier = barrier


def _wait() -> None:
    _barrier.wait(BARRIER_TIMEOUT_S)


def migrate() -> list[str]:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    return [connection.vendor, connection.settings_dict["NAME"]]


def pid() -> int:
    _wait()
    return os.getpid()


def _user(name: str):
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username=name, defaults={"email": f"{name}@example.org"})
    return user


def _grant(user, amount: int, key: str) -> None:
    from rewards import services

    services.credit_grant(actor=None, user=user, amount=amount, reason="ledger race", idempotency_key=key)


# --- fee_record on one payer ----------------------------------------------------------------------------

def seed_payer(*, name: str, balance: int) -> dict:
    payer, owner = _user(name), _user(f"{name}-owner")
    _grant(payer, balance, f"race-grant:{name}")
    return {"payer": payer.pk, "owner": owner.pk}


def race_fee_record(*, payer_id: int, owner_id: int, price: int, attempts: int, tag: str) -> dict:
    from django.contrib.auth import get_user_model

    from rewards import services

    users = get_user_model().objects.in_bulk([payer_id, owner_id])
    outcome = {"recorded": [], "refused": 0}
    _wait()
    for n in range(attempts):
        inference_id = f"{tag}-{os.getpid()}-{n}"
        try:
            services.fee_record(inference_id=inference_id, payer=users[payer_id], model_owner=users[owner_id],
                                fee=price, contributor_shares={}, model_version_hash="ab" * 32, settle_soon=False)
        except services.InsufficientCredit:
            outcome["refused"] += 1
        else:
            outcome["recorded"].append(inference_id)
    return outcome


# --- fee_settle_batch / fees_settle_pending side by side ---------------------------------------------------

def seed_fees(*, tag: str, payers: int, fees_per_payer: int, price: int, owner_name: str,
              contributor_name: str) -> dict:
    """`payers` payers with credit for their fees, and `fees_per_payer` recorded fees each, recorded payer after
    payer (so each run of consecutive pending rows belongs to one payer). Accounts every settlement touches
    exist beforehand (one fee settled now), as after the first day of any deployment."""
    from rewards import services

    owner, contributor = _user(owner_name), _user(contributor_name)
    ids = []
    for p in range(payers):
        payer = _user(f"{tag}-payer-{p}")
        _grant(payer, price * (fees_per_payer + 1), f"{tag}-grant-{p}")
        if p == 0:
            services.fee_settle(inference_id=f"{tag}-warm", payer=payer, model_owner=owner, fee=price,
                                contributor_shares={contributor.pk: 1_000_000}, model_version_hash="cd" * 32)
        for n in range(fees_per_payer):
            inference_id = f"{tag}-{p}-{n}"
            services.fee_record(inference_id=inference_id, payer=payer, model_owner=owner, fee=price,
                                contributor_shares={contributor.pk: 1_000_000}, model_version_hash="cd" * 32,
                                settle_soon=False)
            ids.append(inference_id)
    return {"inference_ids": ids}


def race_settle_holding(*, limit: int) -> dict:
    """One batch in a transaction kept open until every racer has booked its own: with SKIP LOCKED each takes
    rows nobody else holds; without it the second racer would wait for the first, which waits at the barrier
    for the second, and the barrier would break."""
    from django.db import transaction

    from rewards import services
    from rewards.models import Settlement

    _wait()
    with transaction.atomic():
        batch = services.fee_settle_batch(limit=limit)
        booked = list(Settlement.objects.filter(transaction_id=batch.transaction_id)
                      .values_list("inference_id", flat=True)) if batch.transaction_id else []
        _wait()  # every racer holds its batch's row locks here, uncommitted
    return {"settled": batch.settled, "released": batch.released, "inference_ids": booked}


def race_settle_drain(*, limit: int) -> dict:
    from rewards import services

    _wait()
    return {"settled": services.fees_settle_pending(limit=limit, max_seconds=300)}


# --- the epoch close -------------------------------------------------------------------------------------

def seed_epoch(*, wallet_keys: dict[str, str], price: int, fees: int) -> dict:
    """Deploy (recorded) the rewards contracts on the test's chain, link the earners' wallets through SIWE, and
    settle `fees` fees whose contributors' part goes to the wallet holders."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from rewards import services
    from rewards.chainio import deployment_ensure

    deployment = deployment_ensure()
    earners = {}
    for name, key in wallet_keys.items():
        user, account = _user(name), Account.from_key(key)
        issued = services.wallet_nonce_issue(user=user, address=account.address)
        signature = "0x" + bytes(Account.sign_message(encode_defunct(text=issued.message),
                                                      private_key=account.key).signature).hex()
        services.wallet_link(user=user, message=issued.message, signature=signature)
        earners[name] = user
    payer = _user("epoch-payer")
    _grant(payer, price * fees, "epoch-grant")
    names = sorted(earners)
    for n in range(fees):
        services.fee_settle(inference_id=f"epoch-fee-{n}", payer=payer, model_owner=earners[names[0]], fee=price,
                            contributor_shares={earners[names[n % len(names)]].pk: 1_000_000},
                            model_version_hash="ef" * 32)
    return {"deployment": deployment.pk, "distributor": deployment.distributor_address,
            "treasury": deployment.deposit_address}


def race_epoch_close() -> dict:
    from rewards import services

    _wait()
    try:
        epoch = services.epoch_close()
    except services.EpochBlocked as exc:
        return {"outcome": "blocked", "detail": str(exc)}
    if epoch is None:
        return {"outcome": "nothing"}
    return {"outcome": "epoch", "number": epoch.number, "state": epoch.state}


def epoch_report() -> dict:
    from rewards.chainio import contracts, deployment_ensure, get_chain_client
    from rewards.models import Epoch, PayoutAllocation

    client = get_chain_client()
    deployment = deployment_ensure(client=client)
    token, distributor = contracts(deployment, client)
    fundings = token.contract.events.Transfer.get_logs(from_block=0, argument_filters={"to": distributor.address})
    return {
        "epochs": list(Epoch.objects.values_list("number", "state")),
        "allocations": PayoutAllocation.objects.count(),
        "fundings": [int(event["args"]["value"]) for event in fundings],
        "roots_posted": len(distributor.contract.events.RootUpdated.get_logs(from_block=0)),
        "total_cumulative": [int(v) for v in Epoch.objects.values_list("total_cumulative", flat=True)],
    }


# --- what the books hold ---------------------------------------------------------------------------------

def books(*, tag: str | None = None) -> dict:
    from django.db.models import Count

    from rewards import ledger
    from rewards.models import AccountKind, LedgerAccount, PendingFee, Settlement

    settlements = Settlement.objects.all()
    pending = PendingFee.objects.all()
    if tag:
        settlements = settlements.filter(inference_id__startswith=tag)
        pending = pending.filter(inference_id__startswith=tag)
    check = ledger.ledger_check()
    credit = {
        account.user.username: {"balance": int(account.balance), "held": int(account.held)}
        for account in LedgerAccount.objects.filter(kind=AccountKind.CREDIT).select_related("user")
    }
    return {
        "settled": sorted(settlements.values_list("inference_id", flat=True)),
        "settled_twice": list(settlements.values("inference_id").annotate(n=Count("id")).filter(n__gt=1)
                              .values_list("inference_id", flat=True)),
        "pending": sorted(pending.values_list("inference_id", flat=True)),
        "ledger_ok": check.ok,
        "ledger_problems": check.problems,
        "credit": credit,
    }


def settle_all() -> int:
    from rewards import services

    return services.fees_settle_pending(max_seconds=300)
