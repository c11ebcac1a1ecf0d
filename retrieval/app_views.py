"""Retrieval app pages: the list, the deploy form, an app's page (how to call it; retiring it) and a receipt
of the passages one answer cited. Thin: reads from this app's selectors, writes through its services."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lineage.forms import form_errors_from

from . import selectors, services
from .forms import RetrievalAppForm


def apps_index(request):
    apps = list(selectors.apps_callable_by(user=request.user).order_by("name"))
    mine = list(selectors.apps_of(owner=request.user)) if request.user.is_authenticated else []
    versions = selectors.app_versions_by_app(apps={a.pk for a in apps + mine})
    for app in apps + mine:
        app.version_list = versions.get(app.pk, [])
    return render(request, "retrieval/apps.html", {"apps": apps, "mine": mine})


@login_required
def app_create(request):
    form = RetrievalAppForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            app = services.app_deploy(
                owner=request.user, name=data["name"], versions=list(data["versions"]),
                causal_model=data["causal_model"], price_per_inference=data["price_per_inference"],
                passages=data["passages"], description=data["description"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Deployed: “{app.slug}” answers on the API and in the playground.")
            return redirect(app)
    return render(request, "retrieval/app_form.html", {"form": form})


def app_detail(request, slug):
    app = selectors.app_get_visible(slug=slug, user=request.user)
    return render(request, "retrieval/app_detail.html", {
        "app": app, "versions": selectors.app_versions(app=app),
        "is_owner": request.user.is_authenticated and app.owner_id == request.user.pk,
        "api_base": request.build_absolute_uri("/v1"),
    })


@login_required
@require_POST
def app_retire(request, slug):
    app = selectors.app_get_visible(slug=slug, user=request.user)
    try:
        services.app_retire(app=app, actor=request.user)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Retired: “{app.slug}” no longer answers.")
    return redirect(app)


def receipt(request, receipt_id):
    item = selectors.receipt_get(receipt_id=receipt_id)
    return render(request, "retrieval/receipt.html", {
        "receipt": item, "show_query": selectors.receipt_shows_query(receipt=item, user=request.user),
        **selectors.receipt_explained(receipt=item, user=request.user), "rule": services.CREDIT_RULE,
    })
