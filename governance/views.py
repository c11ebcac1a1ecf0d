"""Governance pages: proposals and votes (read from the database), and the forms that ask for a transaction
(delegate, propose a fee split, an epoch length or a share policy, vote, stake; staff: queue and execute). Thin: writes through services, which either
queue the transaction for the platform to sign (development keys; the platform's own for queue/execute) or
prepare it for the user's wallet (`actions/<pk>/` shows it)."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from datanets.selectors import datanet_get_visible, datanet_permissions
from lineage.forms import form_errors_from
from rewards.chain.governance import FeeSplit, SharePolicyValues

from . import selectors, services
from .forms import (
    DelegateForm,
    EpochLengthProposalForm,
    FeeSplitProposalForm,
    SharePolicyProposalForm,
    StakeForm,
    StakeRequirementForm,
    VoteForm,
)
from .models import ActionKind, Proposal, ProposalState


def _asked(request, action):
    if action.relayed:
        messages.info(request, f"Sent to the chain for {action.address}: this page shows when it is confirmed.")
    else:
        messages.info(request, "Sign and send the transaction below with your wallet.")
    return redirect("governance:action", pk=action.pk)


def proposal_list(request):
    return render(request, "governance/proposal_list.html",
                  {"rows": selectors.proposals_list(), "indexed_up_to": selectors.indexed_up_to()})


def proposal_detail(request, pk: int):
    context = selectors.proposal_detail(pk=pk)
    context["vote_form"] = VoteForm()
    context["can_vote"] = request.user.is_authenticated and context["proposal"].state == ProposalState.ACTIVE
    return render(request, "governance/proposal_detail.html", context)


@login_required
@require_POST
def vote(request, pk: int):
    proposal = get_object_or_404(Proposal.objects.select_related("deployment"), pk=pk)
    form = VoteForm(request.POST)
    if form.is_valid():
        try:
            action = services.vote_request(user=request.user, proposal=proposal, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            return _asked(request, action)
    return redirect("governance:proposal", pk=pk)


PROPOSAL_FORMS = {"fee_split": FeeSplitProposalForm, "epoch_length": EpochLengthProposalForm,
                  "share_policy": SharePolicyProposalForm}


def _proposed_change(kind: str, form) -> dict:
    """The keyword argument of `services.proposal_submit` that this form's change is."""
    data = form.cleaned_data
    if kind == "epoch_length":
        return {"epoch_length_s": form.epoch_length_s()}
    if kind == "share_policy":
        return {"share_policy": SharePolicyValues(form.fdr_bps(), data["top_groups"])}
    return {"split": FeeSplit(data["protocol_bps"], data["owner_bps"], data["contributors_bps"])}


@login_required
def propose(request):
    kind = request.POST.get("change") or request.GET.get("change") or "fee_split"
    if kind not in PROPOSAL_FORMS:
        raise Http404("Propose a fee split, an epoch length or a share policy.")
    form = PROPOSAL_FORMS[kind](request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            action = services.proposal_submit(user=request.user, description=form.cleaned_data["description"],
                                              **_proposed_change(kind, form))
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            return _asked(request, action)
    return render(request, "governance/propose.html",
                  {"form": form, "change": kind, "wallet": selectors.wallet_address_for(user=request.user),
                   "in_force": selectors.parameters_in_force()})


@login_required
def delegate(request):
    form = DelegateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            action = services.delegate_request(user=request.user, amount=form.cleaned_data["amount"] or 0,
                                               delegatee=form.cleaned_data["delegatee"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            return _asked(request, action)
    return render(request, "governance/delegate.html",
                  {"form": form, "overview": selectors.wallet_overview(user=request.user),
                   "actions": selectors.wallet_actions_for(user=request.user, limit=10)})


@staff_member_required
def queue(request):
    return render(request, "governance/queue.html", selectors.proposals_awaiting())


@staff_member_required
@require_POST
def advance(request, pk: int):
    proposal = get_object_or_404(Proposal.objects.select_related("deployment"), pk=pk)
    try:
        action = services.proposal_advance(actor=request.user, proposal=proposal, step=request.POST.get("step", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("governance:queue")
    return _asked(request, action)


@login_required
def action_detail(request, pk: int):
    action = selectors.wallet_action_get(pk=pk, user=request.user)
    if request.method == "POST":
        try:
            services.wallet_action_retry(user=request.user, action=action)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("governance:action", pk=pk)
    return render(request, "governance/action.html", {"action": action})


@login_required
def stakes(request):
    form = StakeForm(request.POST or None, initial={"datanet": request.GET.get("datanet", "")})
    if request.method == "POST" and form.is_valid():
        amount, kind = form.cleaned_data["amount"] or 0, request.POST.get("kind", "")
        ask = {ActionKind.STAKE: services.stake_request, ActionKind.UNSTAKE: services.unstake_request}
        try:
            try:
                datanet = datanet_get_visible(slug=form.cleaned_data["datanet"], user=request.user)
            except Http404 as exc:
                raise ValidationError(f"There is no Datanet “{form.cleaned_data['datanet']}” you can see.") from exc
            if kind == ActionKind.WITHDRAW:
                action = services.withdraw_request(user=request.user, datanet=datanet)
            elif kind in ask:
                action = ask[kind](user=request.user, datanet=datanet, amount=amount)
            else:
                raise ValidationError("Stake, unstake or withdraw.")
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            return _asked(request, action)
    return render(request, "governance/stakes.html", {"form": form, **selectors.stakes_for(user=request.user)})


@login_required
def datanet_stake(request, slug: str):
    datanet = datanet_get_visible(slug=slug, user=request.user)
    can_manage = datanet_permissions(datanet=datanet, user=request.user).can_manage
    overview = selectors.datanet_stake_overview(datanet=datanet)
    initial = {"minimum": int(overview["requirement"].minimum) if overview["requirement"] else 0}
    form = StakeRequirementForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Only this Datanet's owner sets its stake requirement.")
        if form.is_valid():
            services.stake_requirement_set(datanet=datanet, actor=request.user, minimum=form.cleaned_data["minimum"])
            messages.success(request, "Stake requirement saved.")
            return redirect("governance:datanet_stake", slug=slug)
    return render(request, "governance/datanet_stake.html",
                  {"datanet": datanet, "form": form, "can_manage": can_manage, **overview})
