from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from lineage.forms import form_errors_from
from lineage.htmx import HtmxHttpRequest, render_page_or_partial

from .forms import ApiKeyForm
from .models import ApiKey
from .selectors import api_keys_for_user
from .services import IssuedKey, api_key_create, api_key_revoke

# A new key's secret between the POST that creates it and the GET that shows it (POST/redirect/GET, so that reloading
# the page repeats the GET, not the creation). It travels in a short-lived signed cookie scoped to the keys page:
# never in the URL, and never in the database: the session table is a table too, and only the key's hash is stored
# (as the page tells its reader). The GET that shows it deletes the cookie, so a reload shows the secret no more.
ISSUED_KEY_COOKIE = "lineage_issued_key"
ISSUED_KEY_COOKIE_MAX_AGE_S = 300


def _issued_key_salt(user) -> str:
    return f"accounts.issued_api_key.{user.pk}"  # one user's cookie does not verify for another


def _issued_key_cookie_set(response, *, user, issued: IssuedKey) -> None:
    response.set_signed_cookie(
        ISSUED_KEY_COOKIE, f"{issued.api_key.pk}:{issued.secret}", salt=_issued_key_salt(user),
        max_age=ISSUED_KEY_COOKIE_MAX_AGE_S, path=reverse("accounts:api_keys"), secure=settings.SESSION_COOKIE_SECURE,
        httponly=True, samesite="Strict",
    )


def _issued_key_from_cookie(request) -> IssuedKey | None:
    """The key created just before this GET, with its secret. A cookie that is stale, tampered with or another
    user's shows nothing."""
    value = request.get_signed_cookie(ISSUED_KEY_COOKIE, default=None, salt=_issued_key_salt(request.user),
                                      max_age=ISSUED_KEY_COOKIE_MAX_AGE_S)
    key_id, _, secret = (value or "").partition(":")
    if not key_id.isdigit() or not secret:
        return None
    api_key = api_keys_for_user(user=request.user).filter(pk=int(key_id)).first()
    return IssuedKey(api_key=api_key, secret=secret) if api_key else None


@login_required
def api_keys(request: HtmxHttpRequest):
    form = ApiKeyForm()
    if request.method == "POST":
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                issued = api_key_create(user=request.user, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"])
            except ValidationError as exc:
                form_errors_from(form, exc)
            else:
                if request.htmx:  # the panel is swapped in place: there is no page to reload, so answer directly
                    return _keys_page(request, form=ApiKeyForm(), issued=issued)
                response = redirect("accounts:api_keys")
                _issued_key_cookie_set(response, user=request.user, issued=issued)
                return response
        return _keys_page(request, form=form)
    if request.method != "GET" or not request.COOKIES.get(ISSUED_KEY_COOKIE):
        return _keys_page(request, form=form)
    issued = _issued_key_from_cookie(request)
    if issued is None:
        messages.warning(request, "Your new key's secret can no longer be shown (it is shown once, within "
                                  f"{ISSUED_KEY_COOKIE_MAX_AGE_S // 60} minutes). Revoke that key and create another.")
    response = _keys_page(request, form=form, issued=issued)
    response.delete_cookie(ISSUED_KEY_COOKIE, path=reverse("accounts:api_keys"), samesite="Strict")  # shown once
    return response


def _keys_page(request: HtmxHttpRequest, *, form, issued=None):
    context = {"form": form, "issued": issued, "keys": api_keys_for_user(user=request.user)}
    response = render_page_or_partial(request, "accounts/api_keys.html", context, partial="keys-panel")
    if issued:
        add_never_cache_headers(response)  # the secret must not outlive this page in a cache, back button included
    return response


@login_required
@require_POST
def api_key_revoke_view(request: HtmxHttpRequest, pk):
    key = get_object_or_404(ApiKey, pk=pk, user=request.user)
    api_key_revoke(api_key=key, actor=request.user)
    if request.htmx:  # the panel alone, swapped in place
        return _keys_page(request, form=ApiKeyForm())
    messages.success(request, f"Key “{key.name}” revoked. Programs using it now get 401.")
    return redirect("accounts:api_keys")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    display_name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())


@extend_schema(responses=MeSerializer, tags=["accounts"])
@api_view(["GET"])
def me(request):
    """Who the caller is, and with which scopes (all of them for a browser session)."""
    scopes = request.auth.scopes if isinstance(request.auth, ApiKey) else list(settings.API_KEY_SCOPES)
    user = request.user
    return Response(MeSerializer({"id": user.id, "email": user.email, "display_name": user.public_name, "scopes": scopes}).data)


me.cls.__doc__ = me.__doc__
me.cls.required_scopes = {"GET": "read"}
