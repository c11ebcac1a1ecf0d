from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "governance"
    verbose_name = "Governance"

    def ready(self):
        from lineage import hooks

        # rewards sits below governance and must not import it: what it needs from governance is registered
        # here (tests/foundation/test_app_import_graph.py). Each wrapper looks the function up when called.
        hooks.epoch_length.register("governance", _epoch_length_in_force)
        hooks.share_policy.register("governance", _share_policy_in_force)
        hooks.stake_allows.register("governance", _stake_allows_contribution)
        hooks.stake_quota.register("governance", _stake_row_quota)
        hooks.chain_reconcilers.register("governance", _governance_reconcile)
        hooks.chain_node_deployers.register("governance", _staking_deploy)


def _epoch_length_in_force() -> dict:
    from .selectors import epoch_length_in_force

    return epoch_length_in_force()


def _share_policy_in_force() -> dict:
    from .selectors import share_policy_in_force

    return share_policy_in_force()


def _stake_allows_contribution(*, user, datanet) -> tuple[bool, str]:
    from .services import stake_allows_contribution

    return stake_allows_contribution(user=user, datanet=datanet)


def _stake_row_quota(*, user, datanet):
    from .selectors import stake_row_quota

    return stake_row_quota(user=user, datanet=datanet)


def _governance_reconcile() -> list:
    from .services import governance_reconcile

    return governance_reconcile()


def _staking_deploy(*, client) -> str:
    """Deploys governance, then the contributor stakes, on `manage.py chain_node`'s chain; the line it prints."""
    from .chainio import staking_ensure

    governance = staking_ensure(client=client)
    return (f"governance: vOPEN {governance.votes_address}, timelock {governance.timelock_address}, "
            f"governor {governance.governor_address}, parameters {governance.parameters_address}, "
            f"stakes {governance.staking_address}")
