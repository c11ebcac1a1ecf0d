"""Read-only: governance rows are written by the indexers (from the chain) and by services (the pages' actions,
stake requirements, slashes). The proposals awaiting queue/execute have their own staff page,
/governance/queue/ (the Proposal list links it)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import (
    DatanetStakeRequirement,
    GovernanceDeployment,
    GovernedValue,
    ParameterChange,
    Proposal,
    StakeEvent,
    StakeSlash,
    Vote,
    WalletAction,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(GovernanceDeployment)
class GovernanceDeploymentAdmin(ReadOnlyAdmin):
    list_display = ("chain_id", "governor_address", "parameters_address", "deployed_at_block", "created_at")


@admin.register(Proposal)
class ProposalAdmin(ReadOnlyAdmin):
    list_display = ("description", "state", "protocol_bps", "owner_bps", "contributors_bps", "created_block", "eta")
    list_filter = ("state", "change_kind")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": format_html(
            'Proposals · <a href="{}">awaiting queue / execute</a>', reverse("governance:queue"))}
        return super().changelist_view(request, extra_context)


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ("proposal", "voter", "support", "weight", "block_number")


@admin.register(ParameterChange)
class ParameterChangeAdmin(ReadOnlyAdmin):
    list_display = ("registry_version", "protocol_bps", "owner_bps", "contributors_bps", "fee_policy_version",
                    "proposal", "block_number")


@admin.register(WalletAction)
class WalletActionAdmin(ReadOnlyAdmin):
    list_display = ("kind", "user", "address", "state", "relayed", "created_at", "finished_at")
    list_filter = ("kind", "state", "relayed")


@admin.register(DatanetStakeRequirement)
class DatanetStakeRequirementAdmin(ReadOnlyAdmin):
    list_display = ("datanet", "minimum", "set_by", "updated_at")


@admin.register(StakeEvent)
class StakeEventAdmin(ReadOnlyAdmin):
    list_display = ("kind", "address", "user", "datanet_id", "amount", "block_number")
    list_filter = ("kind",)


@admin.register(StakeSlash)
class StakeSlashAdmin(ReadOnlyAdmin):
    list_display = ("user", "datanet", "address", "state", "amount", "evidence_hash", "created_at")
    list_filter = ("state",)


@admin.register(GovernedValue)
class GovernedValueAdmin(ReadOnlyAdmin):
    list_display = ("parameter", "registry_version", "epoch_length_s", "attribution_fdr_bps", "attribution_top_groups",
                    "proposal", "effective_at", "block_number")
    list_filter = ("parameter",)
