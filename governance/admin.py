"""Read-only: governance rows are written only by the indexer, from the chain."""

from django.contrib import admin

from .models import GovernanceDeployment, ParameterChange, Proposal, Vote


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
    list_display = ("description", "state", "protocol_bps", "owner_bps", "contributors_bps", "created_block")
    list_filter = ("state", "change_kind")


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ("proposal", "voter", "support", "weight", "block_number")


@admin.register(ParameterChange)
class ParameterChangeAdmin(ReadOnlyAdmin):
    list_display = ("registry_version", "protocol_bps", "owner_bps", "contributors_bps", "fee_policy_version",
                    "proposal", "block_number")
