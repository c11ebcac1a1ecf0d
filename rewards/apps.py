import logging

from django.apps import AppConfig
from django.core import checks

logger = logging.getLogger("rewards")


class RewardsConfig(AppConfig):
    name = "rewards"
    verbose_name = "Rewards"

    def ready(self):
        from allauth.account.signals import user_signed_up

        from notifications import builders

        from . import notification_events

        # notifications sits below rewards and must not import it (notifications/builders.py).
        for kind, builder in notification_events.BUILDERS.items():
            builders.register_builder(kind, builder)
        user_signed_up.connect(_grant_starter_credit, dispatch_uid="rewards.starter_grant")
        checks.register(_check_starter_grant, checks.Tags.compatibility)


def _grant_starter_credit(sender, request=None, user=None, **kwargs):
    """A new account (signed up by email or a social login) gets its one-time starter credit."""
    from .services import credit_starter_grant

    try:
        credit_starter_grant(user=user)
    except Exception:  # noqa: BLE001 - the account exists either way; an admin can still grant by hand
        logger.exception("starter credit for new user %s failed", getattr(user, "pk", None))


def _check_starter_grant(app_configs=None, **kwargs):
    from django.core.exceptions import ImproperlyConfigured

    from .services import starter_grant_amount

    try:
        starter_grant_amount()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint='Give an amount of OPEN such as "10" or "0.5"; "0" turns it off.',
                             id="rewards.E001")]
    return []
