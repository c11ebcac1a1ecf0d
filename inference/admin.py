from django.contrib import admin

from rewards.admin import OpenAmountsAdmin

from .models import InferenceRecord


@admin.register(InferenceRecord)
class InferenceRecordAdmin(OpenAmountsAdmin):
    open_amount_fields = ("fee",)  # shown in OPEN
    list_display = ("id", "created_at", "user", "model_slug", "endpoint", "status", "fee", "latency_ms")
    list_filter = ("status", "endpoint")
    search_fields = ("id", "model_slug", "model_version_hash", "receipt_id")
    readonly_fields = [f.name for f in InferenceRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
