from django.contrib import admin

from rewards.admin import OpenAmountsAdmin

from .models import BaseModel, FineTuneJob, ModelVersion


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "source_kind", "source_ref", "architecture", "task_types", "is_active")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(FineTuneJob)
class FineTuneJobAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "base_model", "state", "step", "total_steps", "created_at")
    list_filter = ("state",)
    readonly_fields = ("loss_curve", "log_tail", "hyperparameters")


@admin.register(ModelVersion)
class ModelVersionAdmin(OpenAmountsAdmin):
    list_display = ("name", "slug", "owner", "version_hash", "price_per_inference", "deployed", "attribution_status",
                    "created_at")
    open_amount_fields = ("price_per_inference",)  # typed and shown in OPEN, stored in base units
    list_filter = ("deployed", "attribution_status")
    readonly_fields = ("version_hash", "manifest", "metrics", "base_metrics", "lineage")
