from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from .models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per-key limit: a leaked or runaway key cannot starve other users of the same account."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
        return None


class AnonBurstThrottle(AnonRateThrottle):
    scope = "anon"
