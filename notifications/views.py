"""Pages: e-mail settings, and a person's webhooks (list and add, one webhook with its delivery log, send a
test event, remove). Every webhook page is its owner's: anyone else gets 404."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lineage.forms import form_errors_from

from . import selectors, services
from .catalogue import EVENT_TYPES
from .forms import NotificationSettingsForm, WebhookForm
from .secret_box import SecretBoxError


@login_required
def settings_view(request):
    if request.method == "POST":
        form = NotificationSettingsForm(request.POST)
        if form.is_valid():
            services.notification_settings_update(user=request.user, choices=form.cleaned_data)
            messages.success(request, "Notification settings saved.")
            return redirect("notifications:settings")
    else:
        form = NotificationSettingsForm(initial=selectors.settings_for(user=request.user))
    return render(request, "notifications/settings.html", {
        "form": form, "webhook_count": selectors.webhooks_for(user=request.user).count()})


@login_required
def webhooks(request):
    datanets = list(selectors.datanets_managed_by(user=request.user))
    form = WebhookForm(request.POST if request.method == "POST" else None, datanets=datanets)
    if request.method == "POST" and form.is_valid():
        datanet = next((d for d in datanets if d.slug == form.cleaned_data["datanet"]), None)
        try:
            webhook = services.webhook_create(owner=request.user, url=form.cleaned_data["url"], datanet=datanet,
                                              events=form.cleaned_data["events"],
                                              description=form.cleaned_data["description"])
        except ValidationError as exc:
            form_errors_from(form, exc)
        except PermissionDenied as exc:
            form.add_error("datanet", str(exc))
        else:
            messages.success(request, "Webhook added. Copy its signing secret below into your endpoint's settings.")
            return redirect(webhook)
    return render(request, "notifications/webhooks.html", {
        "form": form, "webhooks": selectors.webhooks_for(user=request.user), "event_types": EVENT_TYPES})


@login_required
def webhook(request, webhook_id):
    hook = selectors.webhook_get_for(user=request.user, pk=webhook_id)
    try:
        secret = hook.secret  # stored encrypted; shown to its owner in clear
    except SecretBoxError:
        secret = None  # the page says what happened and what to do, rather than a 500
    return render(request, "notifications/webhook.html", {
        "webhook": hook, "secret": secret, "deliveries": selectors.deliveries_for(webhook=hook),
        "event_types": EVENT_TYPES, "log_limit": selectors.DELIVERY_LOG_LIMIT})


@login_required
@require_POST
def webhook_test(request, webhook_id):
    hook = selectors.webhook_get_for(user=request.user, pk=webhook_id)
    services.webhook_send_test(webhook=hook, actor=request.user)
    messages.info(request, "Test event queued: its delivery appears in the log below (reload in a few seconds).")
    return redirect(hook)


@login_required
@require_POST
def webhook_delete_view(request, webhook_id):
    hook = selectors.webhook_get_for(user=request.user, pk=webhook_id)
    url = hook.url
    services.webhook_delete(webhook=hook, actor=request.user)
    messages.success(request, f"Webhook {url} removed; it receives nothing more.")
    return redirect("notifications:webhooks")

