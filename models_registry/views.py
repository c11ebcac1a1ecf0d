"""ModelFactory pages: launch a fine-tune from a form, watch it live, read the model card, deploy."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lineage.forms import form_errors_from
from lineage.htmx import HtmxHttpRequest, render_page_or_partial

from . import selectors, services
from .forms import FineTuneForm, ModelSettingsForm

CHART_W, CHART_H = 560, 180


def index(request):
    context = {
        "models": selectors.model_versions_visible_to(user=request.user),
        "jobs": selectors.jobs_for(user=request.user)[:20] if request.user.is_authenticated else [],
        "base_models": selectors.base_models(),
    }
    return render(request, "models_registry/index.html", context)


@login_required
def job_create(request):
    form = FineTuneForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            job = services.fine_tune_create(
                owner=request.user, name=data.pop("name"), base_model=data.pop("base_model"),
                datanet_versions=data.pop("datanet_versions"), **data,
            )
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Fine-tune queued. This page updates as it trains.")
            return redirect(job)
    return render(request, "models_registry/job_create.html", {"form": form})


def loss_chart_points(curve) -> str:
    """SVG polyline points for the loss curve, scaled into the chart box."""
    if len(curve) < 2:
        return ""
    steps = [s for s, _ in curve]
    losses = [loss for _, loss in curve]
    lo, hi = min(losses), max(losses)
    span_s, span_l = (max(steps) - min(steps)) or 1, (hi - lo) or 1
    return " ".join(
        f"{(s - min(steps)) / span_s * CHART_W:.1f},{CHART_H - (loss - lo) / span_l * CHART_H:.1f}" for s, loss in curve
    )


@login_required
def job(request: HtmxHttpRequest, pk):
    item = selectors.job_get_for(user=request.user, pk=pk)
    context = {
        "job": item,
        "chart_points": loss_chart_points(item.loss_curve),
        "chart": {"w": CHART_W, "h": CHART_H},
        "loss_range": (min(loss for _, loss in item.loss_curve), max(loss for _, loss in item.loss_curve))
        if item.loss_curve else None,
        "version": getattr(item, "model_version", None) if item.state == "succeeded" else None,
    }
    if context["version"] is not None:
        context["card"] = selectors.model_version_card(version=context["version"])
    return render_page_or_partial(request, "models_registry/job.html", context, partial="live")


@login_required
@require_POST
def job_cancel(request, pk):
    item = selectors.job_get_for(user=request.user, pk=pk)
    services.fine_tune_cancel(job=item, actor=request.user)
    messages.info(request, "Cancelling: the job stops at its next step and keeps its checkpoint.")
    return redirect(item)


def version(request, slug):
    item = selectors.model_version_get_visible(slug=slug, user=request.user)
    is_owner = request.user.is_authenticated and item.owner_id == request.user.pk
    settings_form = ModelSettingsForm(initial={"price_per_inference": int(item.price_per_inference),
                                               "allow_download": item.allow_download})
    if request.method == "POST":
        if not is_owner:
            raise PermissionDenied("Only the model's owner changes it.")
        settings_form = ModelSettingsForm(request.POST)
        if settings_form.is_valid():
            try:
                services.model_version_update(version=item, actor=request.user, **settings_form.cleaned_data)
            except ValidationError as exc:  # e.g. pricing a deployed model whose index is not built
                form_errors_from(settings_form, exc)
            else:
                messages.success(request, "Saved.")
                return redirect(item)
    labels = item.label_names
    matrix = item.metrics.get("confusion_matrix")
    context = {"version": item, "is_owner": is_owner, "settings_form": settings_form, "labels": labels,
               "confusion": list(zip(labels, matrix, strict=False)) if matrix else None,
               "lineage_datanets": selectors.model_version_lineage_for(version=item, user=request.user)["datanets"],
               "card": selectors.model_version_card(version=item)}
    return render(request, "models_registry/version.html", context)


@login_required
@require_POST
def version_deploy(request, slug):
    item = selectors.model_version_get_visible(slug=slug, user=request.user)
    deploy = request.POST.get("deploy") == "1"
    try:
        services.model_version_set_deployed(version=item, actor=request.user, deployed=deploy)
        messages.success(request, "Deployed: it now answers on the API and in the playground." if deploy else "Undeployed.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(item)


def version_download(request, slug):
    item = selectors.model_version_get_visible(slug=slug, user=request.user)
    data = services.model_version_adapter_zip(version=item, user=request.user)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{item.slug}-adapter.zip"'
    return response
