from django.contrib import admin

from .models import ApiCallCount, CohortRetention, EpochSummary, MetricFact, RefreshState, ServingSample


class ReadOnlyAdmin(admin.ModelAdmin):
    """Summaries are recomputed by `insights.services`; editing them by hand would be overwritten."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(MetricFact)
class MetricFactAdmin(ReadOnlyAdmin):
    list_display = ("day", "grain", "metric", "scope_kind", "scope_id", "value", "synthetic")
    list_filter = ("grain", "synthetic", "scope_kind", "metric")
    date_hierarchy = "day"


@admin.register(CohortRetention)
class CohortRetentionAdmin(ReadOnlyAdmin):
    list_display = ("kind", "cohort_week", "weeks_after", "cohort_size", "active", "synthetic")
    list_filter = ("kind", "synthetic")


@admin.register(EpochSummary)
class EpochSummaryAdmin(ReadOnlyAdmin):
    list_display = ("number", "state", "frozen_at", "accrued", "funded", "claimed", "recipients", "synthetic")
    list_filter = ("synthetic", "state")


@admin.register(ApiCallCount)
class ApiCallCountAdmin(ReadOnlyAdmin):
    list_display = ("day", "api_key_id", "user_id", "scope", "calls")
    list_filter = ("scope",)


admin.site.register(ServingSample, ReadOnlyAdmin)
admin.site.register(RefreshState, ReadOnlyAdmin)
