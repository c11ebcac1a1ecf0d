"""Retrieval indexes in the Django admin: read-only, with one action that calls the service which queues a
failed build again (audited)."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from . import services
from .models import IndexState, RetrievalApp, RetrievalIndex, RetrievalReceipt


@admin.register(RetrievalIndex)
class RetrievalIndexAdmin(admin.ModelAdmin):
    list_display = ("version", "state", "passage_count", "size_bytes", "device", "build_seconds", "built_at", "problem")
    list_filter = ("state", "device")
    search_fields = ("version__datanet__name", "version__datanet__slug", "version_hash", "index_hash", "error")
    list_select_related = ("version__datanet",)
    readonly_fields = [field.name for field in RetrievalIndex._meta.fields]
    actions = ["queue_again"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Why it failed")
    def problem(self, index):
        return index.error[:200] + ("…" if len(index.error) > 200 else "")

    @admin.action(description="Queue the build again (failed indexes)")
    def queue_again(self, request, queryset):
        queued = 0
        for index in queryset.filter(state=IndexState.FAILED):
            try:
                services.index_build_requeue(index=index, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                queued += 1
        self.message_user(request, f"{queued} build{'s' if queued != 1 else ''} queued again.", messages.SUCCESS)


@admin.register(RetrievalApp)
class RetrievalAppAdmin(admin.ModelAdmin):
    """Read-only: apps are deployed and retired by their owners (audited services)."""

    list_display = ("name", "slug", "owner", "state", "answer_mode", "passages", "price_per_inference", "created_at")
    list_filter = ("state",)
    search_fields = ("name", "slug", "owner__username", "app_hash")
    list_select_related = ("owner",)
    readonly_fields = [field.name for field in RetrievalApp._meta.fields] + ["versions"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RetrievalReceipt)
class RetrievalReceiptAdmin(admin.ModelAdmin):
    list_display = ("receipt_id", "app", "answer_mode", "inference_id", "created_at")
    search_fields = ("receipt_id", "inference_id", "app__slug")
    list_select_related = ("app",)
    readonly_fields = [field.name for field in RetrievalReceipt._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
