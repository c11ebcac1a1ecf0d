"""Governance and stake transactions asked for from the pages (`WalletAction`).

How a transaction is signed (docs/governance.md, "Who signs"):

* Development (`GOVERNANCE_DEV_SIGNING` on the in-process chain): when the user's linked wallet is one of
  the chain's own funded accounts, the platform signs with that account's key. The action is queued for the
  `chain` worker (`governance.tasks.chain_wallet_action`, on commit) and sent there.
* Production: the action is `prepared`: its page shows each transaction (to, data, value, chain id) for the
  user's own wallet to sign and send; the indexer records the outcome from the chain.
* Queue and execute are permissionless: staff ask for them and the platform sends them with its own key,
  in every environment.

`wallet_action_run` is safe to run again after any fault: before each step it asks the chain whether the
step already happened (proposal exists, vote cast, proposal queued or executed, delegate set, vOPEN
balance reached, stake request id used), so a resend after a lost answer never repeats it.
"""

import logging
import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.services import AuditAction, audit_record
from rewards.chain import ChainRevert, TokenContract, checksum_address
from rewards.chain.governance import (
    EPOCH_LENGTH,
    FEE_SPLIT,
    SHARE_POLICY,
    SUPPORT,
    FeeSplit,
    ProposalActions,
    SharePolicyValues,
    refusal_reason,
)
from rewards.chainio import get_chain_client

from ..chainio import contracts, deployment_ensure, dev_signer_for, staking_contract, staking_ensure
from ..models import ActionKind, ActionState, Proposal, ProposalState, WalletAction
from ..selectors import wallet_address_for
from .indexer import governance_index

logger = logging.getLogger("governance")
PLATFORM_KINDS = (ActionKind.QUEUE, ActionKind.EXECUTE)
STAKE_KINDS = (ActionKind.STAKE, ActionKind.UNSTAKE, ActionKind.WITHDRAW)
WALLET_ACTION_OUTCOMES = ("requested", "retried", "failed")


def wallet_action_audit(kind: str, outcome: str) -> AuditAction:
    """The audit action of a wallet action's outcome: `AuditAction.GOVERNANCE_<KIND>_<OUTCOME>`, one member per
    `ActionKind` and outcome in `WALLET_ACTION_OUTCOMES` (a kind without one is refused: ValueError)."""
    return AuditAction(f"governance.{ActionKind(kind)}_{outcome}")


def _require_wallet(user) -> str:
    address = wallet_address_for(user=user)
    if not address:
        raise ValidationError("Link a wallet first (Rewards → Wallet): governance and stakes act from it.")
    return address


def action_create(*, user, kind: str, address: str, params: dict, transactions: list[dict], request_id: str = "",
                  proposal: Proposal | None = None, client=None) -> WalletAction:
    """Record what the user asked for and either queue it for the platform to sign (development keys, or the
    platform's own for queue/execute) or keep it `prepared` with the transactions for the user's wallet."""
    from ..tasks import chain_wallet_action

    client = client or get_chain_client()
    relayed = kind in PLATFORM_KINDS or dev_signer_for(address, client=client) is not None
    with transaction.atomic(durable=True):
        action = WalletAction.objects.create(
            user=user, kind=kind, address=address, params={**params, "transactions": transactions},
            request_id=request_id, relayed=relayed, proposal=proposal,
            state=ActionState.QUEUED if relayed else ActionState.PREPARED)
        audit_record(actor=user, action=wallet_action_audit(kind, "requested"), target=action,
                     details={"address": address, "relayed": relayed, **params})
        if relayed:
            chain_wallet_action.delay_on_commit(action.pk)
    return action


def _tx(label: str, to: str, data: str, chain_id: int) -> dict:
    return {"label": label, "to": to, "data": data, "value": "0", "chain_id": chain_id}


# --- Asking -----------------------------------------------------------------------------------------------

def delegate_request(*, user, amount: int, delegatee: str = "", client=None) -> WalletAction:
    """Wrap `amount` OPEN into vOPEN (0: none) and delegate the voting power (to oneself by default)."""
    client = client or get_chain_client()
    address = _require_wallet(user)
    try:
        delegatee = checksum_address(delegatee.strip()) if delegatee.strip() else address
    except ValueError as exc:
        raise ValidationError(f"Not a valid address to delegate to: {exc}") from exc
    if amount < 0:
        raise ValidationError("The amount to wrap cannot be negative.")
    deployment = deployment_ensure(client=client)
    chain = contracts(deployment, client)
    steps = []
    if amount:
        token = TokenContract(client, deployment.token_address)
        steps += [_tx("approve OPEN to vOPEN", token.address, token.calldata("approve", chain.votes.address, amount),
                      client.chain_id),
                  _tx("depositFor (wrap OPEN into vOPEN)", chain.votes.address,
                      chain.votes.calldata("depositFor", address, amount), client.chain_id)]
    steps.append(_tx("delegate", chain.votes.address, chain.votes.calldata("delegate", delegatee), client.chain_id))
    return action_create(user=user, kind=ActionKind.DELEGATE, address=address, client=client,
                         params={"amount": str(amount), "delegatee": delegatee}, transactions=steps)


def proposal_submit(*, user, description: str, split: FeeSplit | None = None, epoch_length_s: int | None = None,
                    share_policy: SharePolicyValues | None = None, client=None) -> WalletAction:
    """Propose one change of the parameter registry: a fee split, an epoch length (seconds) or a share policy
    (exactly one of them). The registry checks it first (`checkFeeSplit`, `checkEpochLength`,
    `checkSharePolicy`): a value it would refuse is refused here with the registry's own reason, in words,
    before anyone spends a proposal on it."""
    changes = {kind: value for kind, value in ((FEE_SPLIT, split), (EPOCH_LENGTH, epoch_length_s),
                                                (SHARE_POLICY, share_policy)) if value is not None}
    if len(changes) != 1:
        raise ValidationError("Propose one change: a fee split, an epoch length or a share policy.")
    [(kind, value)] = changes.items()
    client = client or get_chain_client()
    address = _require_wallet(user)
    description = (description or "").strip()
    if not description:
        raise ValidationError("Describe the proposal: voters read it.")
    chain = contracts(deployment_ensure(client=client), client)
    try:
        chain.parameters.check(kind, value)
    except ChainRevert as revert:
        raise ValidationError(refusal_reason(revert)) from revert
    actions = chain.parameters.proposal(kind, value, description)
    call = chain.parameters.decode_call(actions.targets[0], actions.calldatas[0])
    return action_create(
        user=user, kind=ActionKind.PROPOSE, address=address, client=client,
        params={"proposal_id": str(actions.proposal_id), "change": {"kind": call.kind, **call.values},
                **({"split": split.as_dict()} if split is not None else {}), "description": description,
                "targets": list(actions.targets), "values": [str(v) for v in actions.values],
                "calldatas": ["0x" + c.hex() for c in actions.calldatas]},
        transactions=[_tx("propose", chain.governor.address, chain.governor.propose_calldata(actions),
                          client.chain_id)])


def vote_request(*, user, proposal: Proposal, support: str, reason: str = "", client=None) -> WalletAction:
    if support not in SUPPORT:
        raise ValidationError("Vote for, against or abstain.")
    client = client or get_chain_client()
    address = _require_wallet(user)
    chain = contracts(proposal.deployment, client)
    reason = (reason or "").strip()[:500]
    return action_create(
        user=user, kind=ActionKind.VOTE, address=address, proposal=proposal, client=client,
        params={"proposal_id": proposal.proposal_id, "support": support, "reason": reason},
        transactions=[_tx(f"vote {support}", chain.governor.address,
                          chain.governor.vote_calldata(int(proposal.proposal_id), support, reason), client.chain_id)])


def proposal_advance(*, actor, proposal: Proposal, step: str, client=None) -> WalletAction:
    """Staff: queue a succeeded proposal in the timelock, or execute a queued one (the platform's key sends
    it; anyone may)."""
    if not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only staff queue and execute proposals from the platform.")
    expected = {ActionKind.QUEUE: ProposalState.SUCCEEDED, ActionKind.EXECUTE: ProposalState.QUEUED}
    if step not in expected:
        raise ValidationError("Queue or execute.")
    if proposal.state != expected[step]:
        raise ValidationError(f"The proposal is {proposal.state}; {step} needs it {expected[step]}.")
    client = client or get_chain_client()
    chain = contracts(proposal.deployment, client)
    actions = _proposal_actions(proposal)
    call = chain.governor.calldata(step, list(actions.targets), list(actions.values), list(actions.calldatas),
                                   actions.description_hash)
    return action_create(user=actor, kind=step, address=client.address, proposal=proposal, client=client,
                         params={"proposal_id": proposal.proposal_id},
                         transactions=[_tx(step, chain.governor.address, call, client.chain_id)])


def wallet_action_retry(*, user, action: WalletAction) -> WalletAction:
    """Send a failed relayed action again (same request id: it cannot happen twice on chain)."""
    from ..tasks import chain_wallet_action

    if action.user_id != user.pk and not getattr(user, "is_staff", False):
        raise PermissionDenied("Not your action.")
    if not action.relayed or action.state != ActionState.FAILED:
        raise ValidationError("Only a failed relayed action can be tried again.")
    with transaction.atomic(durable=True):
        WalletAction.objects.filter(pk=action.pk, state=ActionState.FAILED).update(state=ActionState.QUEUED, error="")
        audit_record(actor=user, action=wallet_action_audit(action.kind, "retried"), target=action, details={})
        chain_wallet_action.delay_on_commit(action.pk)
    action.refresh_from_db()
    return action


def new_request_id() -> str:
    return "0x" + secrets.token_bytes(32).hex()


# --- Running (the chain worker) ---------------------------------------------------------------------------

def _proposal_actions(proposal: Proposal) -> ProposalActions:
    return ProposalActions(tuple(proposal.targets), tuple(int(v) for v in proposal.values),
                           tuple(bytes.fromhex(c[2:]) for c in proposal.calldatas), proposal.description)


def _params_actions(params: dict) -> ProposalActions:
    return ProposalActions(tuple(params["targets"]), tuple(int(v) for v in params["values"]),
                           tuple(bytes.fromhex(c[2:]) for c in params["calldatas"]), params["description"])


def _remember(action: WalletAction, **params) -> None:
    action.params = {**action.params, **params}
    WalletAction.objects.filter(pk=action.pk).update(params=action.params)


def _steps(action: WalletAction, client, signer) -> list[str]:
    """Carry out what is still missing on chain; returns the hashes of the transactions sent."""
    deployment = deployment_ensure(client=client)
    chain = contracts(deployment, client)
    params, address, sent = action.params, action.address, []
    if action.kind == ActionKind.DELEGATE:
        amount = int(params["amount"])
        if amount:
            if "vopen_target" not in params:  # remembered before sending: a resend compares against it
                _remember(action, vopen_target=str(chain.votes.balance_of(address) + amount))
            if chain.votes.balance_of(address) < int(action.params["vopen_target"]):
                token = TokenContract(client, chain.votes.underlying())
                sent.append(chain.votes.wrap(token, amount, sender=signer).tx_hash)
        if chain.votes.delegates(address) != params["delegatee"]:
            sent.append(chain.votes.delegate(params["delegatee"], sender=signer).tx_hash)
    elif action.kind == ActionKind.PROPOSE:
        actions = _params_actions(params)
        if not chain.governor.proposal_exists(actions.proposal_id):
            sent.append(chain.governor.propose(actions, sender=signer).tx_hash)
    elif action.kind == ActionKind.VOTE:
        proposal_id = int(params["proposal_id"])
        if not chain.governor.has_voted(proposal_id, address):
            sent.append(chain.governor.cast_vote(proposal_id, params["support"], params["reason"], sender=signer).tx_hash)
    elif action.kind in PLATFORM_KINDS:
        proposal_id = int(params["proposal_id"])
        done = {"queued", "executed"} if action.kind == ActionKind.QUEUE else {"executed"}
        if chain.governor.state(proposal_id) not in done:
            step = chain.governor.queue if action.kind == ActionKind.QUEUE else chain.governor.execute
            sent.append(step(_proposal_actions(action.proposal), sender=signer).tx_hash)
    elif action.kind in STAKE_KINDS:
        from .staking import stake_steps

        sent += stake_steps(action=action, staking=staking_contract(staking_ensure(client=client), client),
                            token_address=deployment.token_address, client=client, signer=signer)
    return sent


def wallet_action_run(*, action_id: int, client=None) -> WalletAction:
    """Send a queued relayed action (the `chain` queue's task). Records the outcome on the action: done,
    or failed with the chain's reason in words (or the transport fault). Safe to run again."""
    client = client or get_chain_client()
    action = WalletAction.objects.select_related("user", "proposal").get(pk=action_id)
    if action.state != ActionState.QUEUED:
        return action
    signer = client.signer if action.kind in PLATFORM_KINDS else dev_signer_for(action.address, client=client)
    try:
        if signer is None:
            raise ValidationError("The platform holds no key for this wallet: sign the transactions yourself.")
        sent = _steps(action, client, signer)
    except ChainRevert as revert:
        return _failed(action, refusal_reason(revert), revert)
    except ValidationError as exc:
        return _failed(action, " ".join(exc.messages), exc)
    except Exception as exc:  # transport faults, timeouts: the outcome is unknown until tried again
        logger.exception("wallet action %s failed", action.pk)
        return _failed(action, f"The chain did not confirm it ({type(exc).__name__}: {exc}). Nothing is repeated "
                               "when you try again: steps already on chain are skipped.", exc)
    _index_after(action, client)
    proposal = action.proposal or Proposal.objects.filter(proposal_id=action.params.get("proposal_id", "-")).first()
    WalletAction.objects.filter(pk=action.pk, state=ActionState.QUEUED).update(
        state=ActionState.DONE, tx_hashes=[*action.tx_hashes, *sent], finished_at=timezone.now(), proposal=proposal)
    action.refresh_from_db()
    return action


def _index_after(action: WalletAction, client) -> None:
    try:
        if action.kind in STAKE_KINDS:
            from .staking import stakes_index

            stakes_index(client=client)
        elif action.kind != ActionKind.DELEGATE:
            governance_index(client=client)
    except Exception:  # the beat indexes again; the action itself is done on chain
        logger.exception("indexing after wallet action %s failed", action.pk)


def _failed(action: WalletAction, reason: str, error: BaseException) -> WalletAction:
    with transaction.atomic():
        WalletAction.objects.filter(pk=action.pk, state=ActionState.QUEUED).update(
            state=ActionState.FAILED, error=reason[:2000], finished_at=timezone.now())
        audit_record(actor=None, action=wallet_action_audit(action.kind, "failed"), target=action,
                     details={"reason": reason[:500], "error": type(error).__name__})
    action.refresh_from_db()
    return action
