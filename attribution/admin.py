from django.contrib import admin

from .models import AttributionIndex, AttributionReceipt, ValuationReport


@admin.register(AttributionIndex)
class AttributionIndexAdmin(admin.ModelAdmin):
    list_display = ("model_version_hash", "state", "row_count", "contributor_count", "index_hash", "built_at")
    list_filter = ("state",)
    exclude = ("seed",)  # the projection seed is secret
    readonly_fields = ("model_version", "model_version_hash", "index_hash", "method", "k", "damping", "row_count",
                       "contributor_count", "storage_prefix", "state", "progress", "error", "attempts", "started_at",
                       "built_at", "build_seconds")


@admin.register(AttributionReceipt)
class AttributionReceiptAdmin(admin.ModelAdmin):
    list_display = ("receipt_id", "model_version_hash", "inference_id", "latency_ms", "created_at")
    search_fields = ("receipt_id", "inference_id", "model_version_hash")
    readonly_fields = [f.name for f in AttributionReceipt._meta.fields]


@admin.register(ValuationReport)
class ValuationReportAdmin(admin.ModelAdmin):
    list_display = ("model_version", "index_hash", "eval_rows", "created_at")
    readonly_fields = [f.name for f in ValuationReport._meta.fields]
