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
    """Prometheus exposition: web-tier request metrics (summed over web processes in multiprocess
    mode) plus the model server's per-adapter gauges."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from insights.metrics import register_collectors

    registry = metrics.scrape_registry()
    register_collectors(registry)  # operator metrics: broker queue depth (HTTP and task metrics are in the registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
