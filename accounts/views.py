from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from .forms import ApiKeyForm
from .models import ApiKey
from .selectors import api_keys_for_user
from .services import api_key_create, api_key_revoke


@login_required
def api_keys(request):
    issued = None
    form = ApiKeyForm()
    if request.method == "POST":
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                issued = api_key_create(user=request.user, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"])
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form = ApiKeyForm()
    context = {"form": form, "issued": issued, "keys": api_keys_for_user(user=request.user)}
    template = "accounts/api_keys.html#keys-panel" if request.htmx else "accounts/api_keys.html"
    return render(request, template, context)


@login_required
@require_POST
def api_key_revoke_view(request, pk):
    key = get_object_or_404(ApiKey, pk=pk, user=request.user)
    api_key_revoke(api_key=key, actor=request.user)
    if request.htmx:
        return render(
            request,
            "accounts/api_keys.html#keys-panel",
            {"form": ApiKeyForm(), "keys": api_keys_for_user(user=request.user)},
        )
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
