from django.contrib import admin

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
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "owner", "version_hash", "deployed", "attribution_status", "created_at")
    list_filter = ("deployed", "attribution_status")
    readonly_fields = ("version_hash", "manifest", "metrics", "base_metrics", "lineage")
