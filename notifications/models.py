from django.conf import settings
from django.db import models
from django.urls import reverse

from . import secret_box
from .catalogue import EMAIL_KINDS


class NotificationSettings(models.Model):
    """A person's e-mail choices. Someone without a row gets every kind (the default is on)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings")
    email_contribution_reviewed = models.BooleanField(default=True, help_text=EMAIL_KINDS["contribution_reviewed"].help)
    email_fine_tune_finished = models.BooleanField(default=True, help_text=EMAIL_KINDS["fine_tune_finished"].help)
    email_access_decided = models.BooleanField(default=True, help_text=EMAIL_KINDS["access_decided"].help)
    email_earnings_claimable = models.BooleanField(default=True, help_text=EMAIL_KINDS["earnings_claimable"].help)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self):
        return f"notification settings of {self.user}"


class Webhook(models.Model):
    """An endpoint that receives signed JSON events: a person's own (no Datanet) or a Datanet's (set by
    its owner). Every delivery is signed with its secret, so the secret cannot be hashed: it is stored
    encrypted with `NOTIFICATIONS_SECRET_KEY` (`secret_box`), and `secret` reads and sets it in clear."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    datanet = models.ForeignKey("datanets.Datanet", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                                help_text="Empty: the owner's own events. Set: this Datanet's events.")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=120, blank=True)
    secret_encrypted = models.CharField(max_length=255, help_text="The signing secret, encrypted with "
                                        "NOTIFICATIONS_SECRET_KEY (notifications.secret_box).")
    events = models.JSONField(default=list, help_text="Event types this webhook receives.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "active"]), models.Index(fields=["datanet", "active"])]

    def __str__(self):
        return f"{self.url} ({self.owner})"

    def get_absolute_url(self):
        return reverse("notifications:webhook", args=[self.pk])

    @property
    def scope(self) -> str:
        return "datanet" if self.datanet_id else "user"

    @property
    def secret(self) -> str:
        """The signing secret in clear. Raises `secret_box.SecretBoxError` when the key it was encrypted with
        is not this server's `NOTIFICATIONS_SECRET_KEY` any more."""
        return secret_box.unseal(self.secret_encrypted, key=settings.NOTIFICATIONS_SECRET_KEY)

    @secret.setter
    def secret(self, value: str) -> None:  # also `Webhook(secret=...)` and `objects.create(secret=...)`
        self.secret_encrypted = secret_box.seal(value, key=settings.NOTIFICATIONS_SECRET_KEY)


class Event(models.Model):
    """Something that happened, recorded once (by `key`): what e-mails and webhook deliveries are made from."""

    public_id = models.CharField(max_length=40, unique=True, help_text="The `id` webhook receivers see.")
    key = models.CharField(max_length=200, unique=True, help_text="Makes a redelivered dispatch a no-op.")
    type = models.CharField(max_length=40, db_index=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.type} {self.public_id}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event posted to one webhook: the body as sent, and each attempt's outcome."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="The endpoint's last answer.")
    last_error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="An attempt is under way until then.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["webhook", "event"], name="one_delivery_per_webhook_event")]

    def __str__(self):
        return f"{self.event.type} → webhook {self.webhook_id} ({self.state})"
