"""Reads for governance pages: proposals as mirrored by the indexer (never a chain call in a request)."""

from django.shortcuts import get_object_or_404

from rewards.amounts import format_open

from .models import GovernanceCursor, ParameterChange, Proposal


def _vopen(amount) -> str:
    return f"{format_open(amount)} vOPEN"


def _votes(proposal: Proposal) -> dict:
    return {"for": _vopen(proposal.votes_for), "against": _vopen(proposal.votes_against),
            "abstain": _vopen(proposal.votes_abstain)}


def proposals_list(*, limit: int = 100) -> list[dict]:
    return [{"proposal": p, "votes": _votes(p), "change": p.fee_split}
            for p in Proposal.objects.select_related("deployment")[:limit]]


def proposal_detail(*, pk: int) -> dict:
    proposal = get_object_or_404(Proposal.objects.select_related("deployment"), pk=pk)
    return {"proposal": proposal, "votes": _votes(proposal), "change": proposal.fee_split,
            "calls": list(zip(proposal.targets, proposal.values, proposal.calldatas, strict=False)),
            "ballots": [{"voter": v.voter, "support": v.support, "weight": _vopen(v.weight), "reason": v.reason,
                         "tx_hash": v.tx_hash} for v in proposal.votes.all()],
            "applied": list(ParameterChange.objects.filter(proposal=proposal))}


def indexed_up_to() -> int | None:
    """Last block the indexer has read (None before its first run)."""
    cursor = GovernanceCursor.objects.order_by("-pk").first()
    return cursor.next_block - 1 if cursor else None
