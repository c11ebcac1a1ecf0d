"""Contributor stakes: a Datanet owner's stake requirement, staking / unstaking / withdrawing from the
pages (as `WalletAction`s, see `actions`), the indexer of ContributorStakes' events, and the slash rule.

The slash rule (docs/governance.md): a contributor's rows in a Datanet that a curator rejected with a reason
naming `GOVERNANCE_SPAM_REASON_WORD` ("spam"), and rows of theirs there that a valuation report flagged as harmful
and a curator confirmed (a confirmed `EarningsHold`), count against their stake there. Once
`GOVERNANCE_SPAM_ROWS_TO_SLASH` such rows are not yet used as evidence, `GOVERNANCE_SLASH_BPS` of the stake
(active first, then unstaking) goes to the Datanet's reward pool on chain; the evidence (every counted row's
id and reason) is recorded in `StakeSlash`, hashed into the `Slashed` event, and shown on the contributor's
page. Each row is evidence once.
"""

import logging
import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from datanets.selectors import datanet_permissions, datanets_by_id, records_by_uid, review_queue
from datanets.types import RecordStatus
from rewards.amounts import format_open
from rewards.chain import ChainRevert, TokenContract
from rewards.chain.governance import refusal_reason
from rewards.chain.staking import evidence_hash
from rewards.chain_records import cursor_advance, cursor_get
from rewards.chainio import get_chain_client
from rewards.selectors import earnings_holds_confirmed

from ..chainio import staking_contract, staking_ensure
from ..conf import setting
from ..models import (
    ActionKind,
    DatanetStakeRequirement,
    GovernanceCursor,
    SlashState,
    StakeEvent,
    StakeSlash,
    WalletAction,
)
from ..selectors import active_stake, stake_positions, user_by_address
from .actions import _remember, _require_wallet, _tx, action_create, new_request_id

logger = logging.getLogger("governance")
CURSOR = "staking"
BPS = 10_000


# --- The owner's requirement, and the check the upload path calls ---------------------------------------

def stake_requirement_set(*, datanet, actor, minimum: int) -> DatanetStakeRequirement | None:
    """Require contributors to have `minimum` OPEN (base units) actively staked on this Datanet; 0 removes
    the requirement. Only the Datanet's owner (or whoever may manage it)."""
    if not datanet_permissions(datanet=datanet, user=actor).can_manage:
        raise PermissionDenied("Only this Datanet's owner sets its stake requirement.")
    if minimum < 0:
        raise ValidationError("The required stake cannot be negative.")
    with transaction.atomic(durable=True):
        previous = DatanetStakeRequirement.objects.select_for_update().filter(datanet=datanet).first()
        if minimum == 0:
            DatanetStakeRequirement.objects.filter(datanet=datanet).delete()
            requirement = None
        else:
            requirement, _ = DatanetStakeRequirement.objects.update_or_create(
                datanet=datanet, defaults={"minimum": minimum, "set_by": actor, "updated_at": timezone.now()})
        audit_record(actor=actor, action=AuditAction.GOVERNANCE_STAKE_REQUIREMENT_SET, target=datanet,
                     details={"minimum": str(minimum), "previous": str(previous.minimum) if previous else None})
    return requirement


def stake_allows_contribution(*, user, datanet) -> tuple[bool, str]:
    """Whether `user` may contribute to `datanet` as far as stakes go, and why not in words. No requirement,
    or the owner / a curator: allowed. Otherwise their linked wallets' active stake on it (as indexed from
    the chain) must reach the minimum; unstaking OPEN does not count."""
    requirement = DatanetStakeRequirement.objects.filter(datanet=datanet).first()
    if requirement is None or datanet_permissions(datanet=datanet, user=user).can_curate:
        return True, ""
    minimum = int(requirement.minimum)
    staked = active_stake(user=user, datanet_id=datanet.pk)
    if staked >= minimum:
        return True, ""
    return False, (f"Contributing to {datanet.name} needs {format_open(minimum)} OPEN staked on it; your wallets "
                   f"have {format_open(staked)} OPEN staked. Stake at /governance/stakes/.")


# --- Asking to stake, unstake, withdraw ------------------------------------------------------------------

def _stake_action(*, user, datanet, kind: str, amount: int, client) -> WalletAction:
    client = client or get_chain_client()
    address = _require_wallet(user)
    if kind != ActionKind.WITHDRAW and amount <= 0:
        raise ValidationError("The amount must be more than zero.")
    deployment = staking_ensure(client=client)
    staking = staking_contract(deployment, client)
    request_id = new_request_id() if kind != ActionKind.WITHDRAW else ""
    rid = bytes.fromhex(request_id[2:]) if request_id else b""
    if kind == ActionKind.STAKE:
        token = TokenContract(client, deployment.token_address)
        steps = [_tx("approve OPEN to the stakes contract", token.address,
                     token.calldata("approve", staking.address, amount), client.chain_id),
                 _tx("stake", staking.address, staking.calldata("stake", datanet.pk, amount, rid), client.chain_id)]
    elif kind == ActionKind.UNSTAKE:
        steps = [_tx("requestUnstake", staking.address, staking.calldata("requestUnstake", datanet.pk, amount, rid),
                     client.chain_id)]
    else:
        steps = [_tx("withdraw", staking.address, staking.calldata("withdraw", datanet.pk), client.chain_id)]
    return action_create(user=user, kind=kind, address=address, client=client, request_id=request_id,
                         params={"datanet_id": datanet.pk, "datanet": datanet.slug, "amount": str(amount)},
                         transactions=steps)


def stake_request(*, user, datanet, amount: int, client=None) -> WalletAction:
    return _stake_action(user=user, datanet=datanet, kind=ActionKind.STAKE, amount=amount, client=client)


def unstake_request(*, user, datanet, amount: int, client=None) -> WalletAction:
    return _stake_action(user=user, datanet=datanet, kind=ActionKind.UNSTAKE, amount=amount, client=client)


def withdraw_request(*, user, datanet, client=None) -> WalletAction:
    return _stake_action(user=user, datanet=datanet, kind=ActionKind.WITHDRAW, amount=0, client=client)


def stake_steps(*, action: WalletAction, staking, token_address: str, client, signer) -> list[str]:
    """The chain side of a stake action (called by `actions.wallet_action_run`); skips what is done."""
    datanet_id, amount = int(action.params["datanet_id"]), int(action.params["amount"])
    request_id = bytes.fromhex(action.request_id[2:]) if action.request_id else b""
    try:
        if action.kind == ActionKind.STAKE and not staking.request_used(request_id):
            return [staking.stake(TokenContract(client, token_address), datanet_id, amount, request_id,
                                  sender=signer).tx_hash]
        if action.kind == ActionKind.UNSTAKE and not staking.request_used(request_id):
            return [staking.request_unstake(datanet_id, amount, request_id, sender=signer).tx_hash]
        if action.kind == ActionKind.WITHDRAW:
            if staking.stake_of(action.address, datanet_id).unstaking == 0:
                if action.params.get("attempted"):
                    return []  # an earlier try withdrew it; its answer was lost
                raise ValidationError("Nothing is waiting to be withdrawn on this Datanet: ask to unstake first.")
            _remember(action, attempted=True)
            return [staking.withdraw(datanet_id, sender=signer).tx_hash]
    except ChainRevert as revert:
        if revert.error_name != "RequestAlreadyUsed":  # another try of this very request got there first
            raise
    return []


# --- The indexer ------------------------------------------------------------------------------------------

def stakes_index(*, client=None) -> int:
    """Mirror ContributorStakes' events (each once by transaction hash and log index, the cursor moved last)
    and mark slashes whose `Slashed` event arrived as done. Returns the number of new events."""
    client = client or get_chain_client()
    deployment = staking_ensure(client=client)
    staking = staking_contract(deployment, client)
    cursor = cursor_get(GovernanceCursor, deployment=deployment, name=CURSOR,
                        start_block=deployment.staking_deployed_at_block)
    page = staking.events(cursor.next_block)
    recorded = 0
    for event in page.events:
        tx_hash, log_index = event.position.key
        try:
            with transaction.atomic(durable=True):
                if StakeEvent.objects.filter(deployment=deployment, tx_hash=tx_hash, log_index=log_index).exists():
                    continue
                user = user_by_address(event.account)
                StakeEvent.objects.create(
                    deployment=deployment, kind=event.kind, address=event.account, user=user,
                    datanet_id=event.datanet_id, amount=event.amount, from_active=event.from_active,
                    from_unstaking=event.from_unstaking, unlock_at=event.unlock_at,
                    request_id="0x" + event.request_id.hex() if event.request_id else "", tx_hash=tx_hash,
                    log_index=log_index, block_number=event.position.block_number)
                if event.kind == "slashed":
                    StakeSlash.objects.filter(deployment=deployment, evidence_hash="0x" + event.request_id.hex()).update(
                        state=SlashState.DONE, amount=event.amount, tx_hash=tx_hash, error="",
                        finished_at=timezone.now())
                recorded += 1
        except IntegrityError:
            continue
    if page.to_block >= page.from_block:
        cursor_advance(cursor, to_block=page.to_block)
    return recorded


# --- The slash rule ---------------------------------------------------------------------------------------

def _rows_used_as_evidence(*, user, datanet) -> set[int]:
    return {row["id"] for slash in StakeSlash.objects.filter(user=user, datanet=datanet).exclude(
        state=SlashState.NOTHING) for row in slash.rows}


def spam_rows(*, user, datanet) -> list[dict]:
    """The contributor's rows in this Datanet rejected as spam and not yet evidence of a slash."""
    word = setting("GOVERNANCE_SPAM_REASON_WORD")
    pattern = re.compile(rf"\b{re.escape(word)}", re.IGNORECASE)
    used = _rows_used_as_evidence(user=user, datanet=datanet)
    rejected = review_queue(datanet=datanet, status=RecordStatus.REJECTED, contributor=user.username)
    return [{"id": pk, "reason": reason}
            for pk, reason in rejected.filter(reason__icontains=word).values_list("pk", "reason")
            if pattern.search(reason) and pk not in used]


def harmful_rows(*, user, datanet) -> list[dict]:
    """The contributor's rows in this Datanet that a valuation report flagged as harming a model version and a
    curator then confirmed (a confirmed harm hold; a flag still under review, or released, does not count: the
    valuation is statistical and the curator's review is what proves it), not yet evidence of a slash."""
    used = _rows_used_as_evidence(user=user, datanet=datanet)
    found: dict[int, dict] = {}
    holds = earnings_holds_confirmed(user=user)
    records = records_by_uid(uids=[uid for hold in holds for uid in hold.rows])  # one query for every hold's rows
    for hold in holds:
        note = f": {hold.decision_note}" if hold.decision_note else ""
        reason = (f"Harmful: made model version {hold.model_version_hash[:16]} worse on its held-out evaluation "
                  f"(valuation report); a curator confirmed it{note}")[:500]
        for uid in hold.rows:
            record = records.get(uid)
            if (record is None or record.datanet_id != datanet.pk or record.contributor_id != user.pk
                    or record.pk in used or record.pk in found):
                continue
            found[record.pk] = {"id": record.pk, "reason": reason, "hold": hold.pk}
    return [found[pk] for pk in sorted(found)]


def evidence_rows(*, user, datanet) -> list[dict]:
    """Every row that counts against the contributor's stake on this Datanet and is not yet evidence: rows
    rejected as spam, then rows confirmed harmful (a row that is both counts once, as spam)."""
    spam = spam_rows(user=user, datanet=datanet)
    seen = {row["id"] for row in spam}
    return spam + [row for row in harmful_rows(user=user, datanet=datanet) if row["id"] not in seen]


def stake_slashes_enforce(*, client=None) -> list[StakeSlash]:
    """Apply the slash rule to every contributor with a stake, and send slashes still pending or failed.
    Safe to run again: a slash's evidence hash is taken once by the contract. Returns the slashes touched."""
    client = client or get_chain_client()
    deployment = staking_ensure(client=client)
    threshold, share = setting("GOVERNANCE_SPAM_ROWS_TO_SLASH"), setting("GOVERNANCE_SLASH_BPS")
    decided = []
    for (address, datanet_id), position in stake_positions().items():
        if not (position["active"] or position["unstaking"]):
            continue
        datanet = datanets_by_id(ids=[datanet_id]).get(datanet_id)
        user = user_by_address(address)
        if datanet is None or user is None:
            continue
        rows = evidence_rows(user=user, datanet=datanet)
        if len(rows) < threshold:
            continue
        evidence = {"datanet": datanet.pk, "address": address, "rows": rows,
                    "rule": {"spam_rows": threshold, "share_bps": share}}
        digest = "0x" + evidence_hash(evidence).hex()
        with transaction.atomic(durable=True):
            slash, created = StakeSlash.objects.get_or_create(
                evidence_hash=digest, defaults={"deployment": deployment, "datanet": datanet, "user": user,
                                                "address": address, "evidence": evidence, "share_bps": share})
            if created:
                audit_record(actor=None, action=AuditAction.GOVERNANCE_STAKE_SLASH_DECIDED, target=slash,
                             details={"address": address, "datanet": datanet.pk, "rows": [r["id"] for r in rows],
                                      "share_bps": share, "evidence_hash": digest})
        decided.append(slash)
    retry = StakeSlash.objects.filter(deployment=deployment, state__in=[SlashState.PENDING, SlashState.FAILED])
    return [stake_slash_run(slash_id=slash.pk, client=client) for slash in {*decided, *retry}]


def stake_slash_run(*, slash_id: int, client=None) -> StakeSlash:
    """Send one slash (the platform's key holds the slasher role). The amount is the rule's share of the
    stake on chain now, capped by the contract's per-slash maximum; nothing staked: nothing to slash.
    A failure is recorded and retried by the next `stake_slashes_enforce`."""
    client = client or get_chain_client()
    slash = StakeSlash.objects.select_related("deployment").get(pk=slash_id)
    if slash.state in (SlashState.DONE, SlashState.NOTHING):
        return slash
    staking = staking_contract(slash.deployment, client)
    evidence = bytes.fromhex(slash.evidence_hash[2:])
    try:
        if not staking.request_used(evidence):
            position = staking.stake_of(slash.address, slash.datanet_id)
            amount = position.total * min(slash.share_bps, staking.max_slash_bps()) // BPS
            if amount == 0:
                StakeSlash.objects.filter(pk=slash.pk).update(state=SlashState.NOTHING, finished_at=timezone.now())
                slash.refresh_from_db()
                return slash
            staking.slash(slash.address, slash.datanet_id, amount, evidence)
    except ChainRevert as revert:
        if revert.error_name != "RequestAlreadyUsed":
            return _slash_failed(slash, refusal_reason(revert))
    except Exception as exc:  # transport faults: unknown outcome; the next run asks the chain first
        logger.exception("slash %s failed", slash.pk)
        return _slash_failed(slash, f"The chain did not confirm it ({type(exc).__name__}: {exc}).")
    stakes_index(client=client)  # the Slashed event marks it done, with the amount the chain moved
    slash.refresh_from_db()
    return slash


def _slash_failed(slash: StakeSlash, reason: str) -> StakeSlash:
    with transaction.atomic():
        StakeSlash.objects.filter(pk=slash.pk).exclude(state=SlashState.DONE).update(
            state=SlashState.FAILED, error=reason[:2000])
        audit_record(actor=None, action=AuditAction.GOVERNANCE_STAKE_SLASH_FAILED, target=slash, details={"reason": reason[:500]})
    slash.refresh_from_db()
    return slash
