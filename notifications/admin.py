from django.contrib import admin

from .models import Event, NotificationSettings, Webhook, WebhookDelivery


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "email_contribution_reviewed", "email_fine_tune_finished", "email_access_decided",
                    "email_earnings_claimable", "updated_at")
    list_filter = ("email_contribution_reviewed", "email_fine_tune_finished", "email_access_decided",
                   "email_earnings_claimable")
    search_fields = ("user__email", "user__username")
    raw_id_fields = ("user",)


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ("event", "state", "attempts", "status_code", "last_error", "last_attempt_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    ordering = ("-created_at",)
    show_change_link = True


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("url", "owner", "datanet", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "description", "owner__email", "datanet__slug")
    raw_id_fields = ("owner", "datanet")
    # The signing secret is its owner's: staff may switch a webhook off or change its events, not read it.
    fields = ("owner", "datanet", "url", "description", "events", "active", "created_at", "updated_at")
    readonly_fields = ("owner", "datanet", "created_at", "updated_at")
    inlines = [DeliveryInline]

    def has_add_permission(self, request):
        return False  # made by their owner, who gets the secret


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "type", "public_id", "emailed_at")
    list_filter = ("type",)
    search_fields = ("public_id", "key", "type")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "webhook", "event", "state", "attempts", "status_code", "last_attempt_at")
    list_filter = ("state",)
    search_fields = ("webhook__url", "event__public_id", "event__type", "last_error")
    raw_id_fields = ("webhook", "event")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
