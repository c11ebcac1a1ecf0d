from .models import ApiKey


def api_keys_for_user(*, user):
    return ApiKey.objects.filter(user=user).order_by("revoked_at", "-created_at")
