from django.dispatch import Signal
from rest_framework import permissions

from .models import ApiKey

# What each HTTP method needs by default; views narrow it with `required_scopes`.
DEFAULT_METHOD_SCOPES = {"GET": "read", "HEAD": "read", "OPTIONS": "read"}

# Sent (api_key=, scope=) once per request made with an API key whose scope check passed; insights counts
# API calls by scope from it. Receivers must be cheap: they run inside the request.
api_key_call = Signal()


def required_scope(view, request):
    scopes = getattr(view, "required_scopes", None) or {}
    action = getattr(view, "action", None)
    if action and action in scopes:
        return scopes[action]
    if request.method in scopes:
        return scopes[request.method]
    return DEFAULT_METHOD_SCOPES.get(request.method, scopes.get("write", "contribute"))


class HasScope(permissions.BasePermission):
    """Signed-in browser sessions act with all scopes; API keys act only within theirs.

    Views that are public set `public_read = True` so anonymous GETs pass; everything else needs an
    authenticated user. Object-level rules live in each app's selectors and services."""

    message = "Sign in or send an API key in the Authorization header."

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS and getattr(view, "public_read", False) and not isinstance(
            request.auth, ApiKey
        ):
            return True
        if not (request.user and request.user.is_authenticated):
            return False
        if isinstance(request.auth, ApiKey):
            scope = required_scope(view, request)
            if not request.auth.has_scope(scope):
                self.message = f"This API key lacks the '{scope}' scope needed here."
                return False
            api_key_call.send(sender=HasScope, api_key=request.auth, scope=scope)
        return True
