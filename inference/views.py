from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from . import metrics, selectors


@ensure_csrf_cookie
def playground(request):
    models = list(selectors.deployed_models())
    return render(request, "inference/playground.html", {"models": models})


@staff_member_required
def operator(request):
    return render(request, "inference/operator.html", {"overview": selectors.operator_overview()})


def prometheus_metrics(request):
    """Prometheus exposition: web-tier request metrics plus the model server's per-adapter gauges."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    metrics.register_collector()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
