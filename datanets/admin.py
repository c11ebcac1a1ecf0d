"""Datanets in the Django admin: every model listed, searchable and filterable for staff.

Nothing here edits a row in place: Datanets, members and access requests change through the site's pages
(their services check the owner's rights and write the audit trail). Staff act through actions that call
the same services: rows and contributions are accepted or rejected by `services.records_moderate` (the
curators' rules and audit action, marked as moderated in the admin), and versions are re-verified by
`services.version_verify`."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from . import selectors, services
from .models import (
    Contribution,
    Datanet,
    DatanetVersion,
    Membership,
    Record,
    RecordStatus,
    RowError,
    StakeQuotaLock,
    TrainingAccessRequest,
    VersionRecord,
)


class ServicesOnlyAdmin(admin.ModelAdmin):
    """Viewable by staff with the view permission; changed only through the services."""

    show_full_result_count = False  # rows and version links run to millions; no second COUNT(*) per page

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_moderate_permission(self, request):
        return request.user.is_staff and request.user.has_perm("datanets.change_record")


def _moderate(modeladmin, request, record_ids, decision):
    try:
        changed = services.records_moderate(moderator=request.user, record_ids=record_ids, decision=decision)
    except (PermissionDenied, ValidationError) as exc:
        modeladmin.message_user(request, " ".join(getattr(exc, "messages", [str(exc)])), messages.ERROR)
        return
    verb = "accepted" if decision == services.Decision.ACCEPT else "rejected"
    modeladmin.message_user(request, f"{changed} row{'s' if changed != 1 else ''} {verb} (audited as moderation).",
                            messages.SUCCESS)


@admin.register(Datanet)
class DatanetAdmin(ServicesOnlyAdmin):
    list_display = ("name", "slug", "owner", "task_type", "visibility", "training_access", "accepted_rows",
                    "created_at")
    list_filter = ("task_type", "visibility", "contribution_policy", "training_access", "licence")
    search_fields = ("name", "slug", "summary", "owner__username", "owner__display_name", "owner__email")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return selectors.with_accepted_rows(super().get_queryset(request))

    @admin.display(description="accepted rows", ordering="accepted")
    def accepted_rows(self, datanet):
        return datanet.accepted


@admin.register(Membership)
class MembershipAdmin(ServicesOnlyAdmin):
    list_display = ("datanet", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("datanet__name", "datanet__slug", "user__username", "user__display_name", "user__email")
    list_select_related = ("datanet", "user")


@admin.action(description="Accept the rows waiting for review", permissions=["moderate"])
def accept_pending_rows(modeladmin, request, queryset):
    ids = Record.objects.filter(contribution__in=queryset, status=RecordStatus.PENDING).values_list("pk", flat=True)
    _moderate(modeladmin, request, list(ids), services.Decision.ACCEPT)


@admin.action(description="Reject the rows waiting for review", permissions=["moderate"])
def reject_pending_rows(modeladmin, request, queryset):
    ids = Record.objects.filter(contribution__in=queryset, status=RecordStatus.PENDING).values_list("pk", flat=True)
    _moderate(modeladmin, request, list(ids), services.Decision.REJECT)


@admin.register(Contribution)
class ContributionAdmin(ServicesOnlyAdmin):
    list_display = ("__str__", "contributor", "source", "state", "rows_total", "rows_accepted", "rows_rejected",
                    "rows_duplicate", "created_at", "reviewed_at")
    list_filter = ("state", "source", "datanet__task_type")
    search_fields = ("datanet__name", "datanet__slug", "contributor__username", "contributor__display_name",
                     "contributor__email", "file_name", "file_sha256")
    list_select_related = ("datanet", "contributor")
    date_hierarchy = "created_at"
    actions = [accept_pending_rows, reject_pending_rows]


@admin.action(description="Accept the selected rows", permissions=["moderate"])
def accept_rows(modeladmin, request, queryset):
    _moderate(modeladmin, request, list(queryset.values_list("pk", flat=True)), services.Decision.ACCEPT)


@admin.action(description="Reject the selected rows", permissions=["moderate"])
def reject_rows(modeladmin, request, queryset):
    _moderate(modeladmin, request, list(queryset.values_list("pk", flat=True)), services.Decision.REJECT)


@admin.register(Record)
class RecordAdmin(ServicesOnlyAdmin):
    list_display = ("id", "datanet", "contributor", "excerpt", "label", "status", "near_duplicate_score", "created_at")
    list_filter = ("status", "datanet__task_type")
    # `fields` is the row's JSON: its text is searched as text (as the review queue does).
    search_fields = ("fields", "label", "content_hash", "datanet__slug", "datanet__name", "contributor__username")
    list_select_related = ("datanet", "contributor")
    raw_id_fields = ("contribution", "near_duplicate_of", "reviewer")
    actions = [accept_rows, reject_rows]


@admin.register(RowError)
class RowErrorAdmin(ServicesOnlyAdmin):
    list_display = ("contribution", "row_number", "line_number", "code", "message")
    list_filter = ("code",)
    search_fields = ("code", "message", "contribution__datanet__slug", "contribution__contributor__username")
    list_select_related = ("contribution__datanet",)


@admin.action(description="Re-verify the versions' hashes against their files")
def verify_versions(modeladmin, request, queryset):
    failed = []
    for version in queryset.select_related("datanet"):
        check = services.version_verify(version=version, actor=request.user)
        if not check.ok:
            failed.append(f"{version}: {'; '.join(check.problems)}")
    if failed:
        modeladmin.message_user(request, "Verification failed for " + " · ".join(failed), messages.ERROR)
    else:
        modeladmin.message_user(request, "Every selected version matches its hash.", messages.SUCCESS)


@admin.register(DatanetVersion)
class DatanetVersionAdmin(ServicesOnlyAdmin):
    list_display = ("__str__", "datanet", "number", "row_count", "contributor_count", "short_hash", "created_by",
                    "created_at", "verified_at")
    list_filter = ("datanet__task_type", ("verified_at", admin.EmptyFieldListFilter))
    search_fields = ("datanet__name", "datanet__slug", "manifest_hash", "notes", "created_by__username")
    list_select_related = ("datanet", "created_by")
    exclude = ("manifest",)  # lists every row id; the version page shows it readably
    actions = [verify_versions]


@admin.register(VersionRecord)
class VersionRecordAdmin(ServicesOnlyAdmin):
    list_display = ("version", "record")
    list_filter = ("version__datanet__task_type",)
    search_fields = ("version__datanet__slug", "version__datanet__name", "record__content_hash")
    list_select_related = ("version__datanet", "record")
    raw_id_fields = ("version", "record")


@admin.register(TrainingAccessRequest)
class TrainingAccessRequestAdmin(ServicesOnlyAdmin):
    list_display = ("datanet", "requester", "state", "decided_by", "created_at", "decided_at")
    list_filter = ("state",)
    search_fields = ("datanet__name", "datanet__slug", "requester__username", "requester__email", "message")
    list_select_related = ("datanet", "requester", "decided_by")


@admin.register(StakeQuotaLock)
class StakeQuotaLockAdmin(ServicesOnlyAdmin):
    """Read-only: when each contributor's uploads to a staked Datanet were last counted against the row quota
    (the row is the lock that serialises the count; governance/stake quotas)."""

    list_display = ("datanet", "contributor", "locked_at")
    list_filter = ("datanet",)
    date_hierarchy = "locked_at"
    search_fields = ("datanet__name", "datanet__slug", "contributor__username")
    list_select_related = ("datanet", "contributor")
