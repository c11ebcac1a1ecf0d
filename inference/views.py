import secrets

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from . import integrations, metrics, selectors, services


@ensure_csrf_cookie
def playground(request):
    """Try a deployed model. A classifier labels each message on its own (no sampling settings); a causal
    model (instruction or text) keeps a conversation, sent as the `messages` history of each request."""
    models = list(selectors.deployed_models())
    for model in models:
        model.playground_kind = "classifier" if services.is_classifier(model) else "chat"
    credit = integrations.credit_balance(user=request.user) if request.user.is_authenticated else None
    return render(request, "inference/playground.html", {"models": models, "credit": credit})


@staff_member_required
def operator(request):
    return render(request, "inference/operator.html", {"overview": selectors.operator_overview()})


def metrics_allowed(request) -> bool:
    """`Authorization: Bearer <METRICS_TOKEN>` (the scraper) or a staff session; anyone only under DEBUG
    when no token is configured. A wrong token is refused, whatever the session."""
    token = settings.METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and presented.strip():
        return secrets.compare_digest(presented.strip().encode(), token.encode())
    if request.user.is_authenticated and request.user.is_staff:
        return True
    return settings.DEBUG and not token


def prometheus_metrics(request):
    """Prometheus exposition: web-tier request metrics (summed over web processes in multiprocess
    mode) plus the model server's per-adapter gauges. Not public: see `metrics_allowed`."""
    if not metrics_allowed(request):
        return HttpResponseForbidden("Forbidden: /metrics needs the metrics bearer token or a staff session.\n",
                                     content_type="text/plain")
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from insights.metrics import register_collectors

    registry = metrics.scrape_registry()
    register_collectors(registry)  # operator metrics: broker queue depth (HTTP and task metrics are in the registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
