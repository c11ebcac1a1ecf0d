from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from retrieval import selectors as retrieval_selectors

from . import integrations, selectors, services


@ensure_csrf_cookie
def playground(request):
    """Try a deployed model. A classifier labels each message on its own (no sampling settings); a causal
    model (instruction or text) keeps a conversation, sent as the `messages` history of each request."""
    models = list(selectors.deployed_models())
    for model in models:
        model.playground_kind = "classifier" if services.is_classifier(model) else "chat"
    apps = list(retrieval_selectors.apps_callable_by(user=request.user).order_by("name"))
    for app in apps:
        app.playground_kind = "chat"  # a retrieval app keeps the conversation; its answers cite passages
    models += apps
    credit = integrations.credit_balance(user=request.user) if request.user.is_authenticated else None
    return render(request, "inference/playground.html", {"models": models, "credit": credit})


@staff_member_required
def operator(request):
    return render(request, "inference/operator.html", {"overview": selectors.operator_overview()})
