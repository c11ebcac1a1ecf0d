from .models import ApiKey


def api_keys_for_user(*, user):
    return ApiKey.objects.filter(user=user).order_by("revoked_at", "-created_at")


# --- Reads for insights' summaries.

def audit_events_for(*, actions, start=None, end=None) -> list[dict]:
    """Audit events with these actions (`AuditAction` members; optionally in [start, end)), oldest first: created_at, action,
    object_type, object_id."""
    from .models import AuditEvent

    queryset = AuditEvent.objects.filter(action__in=list(actions))
    if start is not None:
        queryset = queryset.filter(created_at__gte=start)
    if end is not None:
        queryset = queryset.filter(created_at__lt=end)
    return list(queryset.order_by("created_at", "id").values("created_at", "action", "object_type", "object_id"))


def api_keys_created_daily(*, start, end) -> list[dict]:
    """Per UTC day: API keys created in [start, end)."""
    from django.db.models import Count
    from django.db.models.functions import TruncDate

    return list(ApiKey.objects.filter(created_at__gte=start, created_at__lt=end).annotate(day=TruncDate("created_at"))
                .values("day").annotate(n=Count("id")).order_by())


def users_public_names(*, user_ids) -> dict[int, str]:
    """{user id: the name pages show for them} (display name, else username): `User.public_name` in bulk.
    Every page, API answer and receipt names people this way; an e-mail address is never shown."""
    from django.contrib.auth import get_user_model

    ids = [int(i) for i in user_ids if str(i).isdigit()]
    users = get_user_model().objects.filter(pk__in=ids).values_list("pk", "display_name", "username")
    return {pk: display or username for pk, display, username in users}
