"""Governance's door to the chain engine: the recorded `GovernanceDeployment` on the current chain
(deployed next to rewards' token and distributor in development, configured in production), the staking
contract recorded on it (`staking_ensure`), handles on its contracts, and the development keys that may
sign for a linked wallet (`dev_signer_for`). The chain client itself is rewards'
(`rewards.chainio.get_chain_client`): one client, one nonce tracker, per process."""

import logging

from django.conf import settings
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.backends.pyevm.main import get_default_account_keys

from rewards import services as rewards_services
from rewards.chain import ChainClient
from rewards.chain.governance import (
    FeeSplit,
    GovernanceParameters,
    PlatformBounds,
    deploy_governance,
    governance_contracts,
)
from rewards.chain.governance import GovernanceDeployment as ChainGovernance
from rewards.chain.staking import StakingContract, StakingParameters, deploy_staking
from rewards.chain_records import deployment_get_or_record
from rewards.chain_records import deployment_recorded as recorded_on_chain
from rewards.chainio import ChainUnavailable, get_chain_client
from rewards.chainio import deployment_ensure as rewards_deployment_ensure

from .conf import DEV_CHAIN_ID, setting
from .models import GovernanceDeployment

logger = logging.getLogger("governance.chain")


def parameters_from_settings() -> GovernanceParameters:
    return GovernanceParameters(
        voting_delay_blocks=settings.GOVERNANCE_VOTING_DELAY_BLOCKS,
        voting_period_blocks=settings.GOVERNANCE_VOTING_PERIOD_BLOCKS,
        proposal_threshold=settings.GOVERNANCE_PROPOSAL_THRESHOLD,
        quorum_percent=settings.GOVERNANCE_QUORUM_PERCENT,
        timelock_delay_s=settings.GOVERNANCE_TIMELOCK_DELAY_S,
        max_protocol_bps=settings.GOVERNANCE_MAX_PROTOCOL_BPS,
        max_owner_bps=settings.GOVERNANCE_MAX_OWNER_BPS,
        min_contributors_bps=settings.GOVERNANCE_MIN_CONTRIBUTORS_BPS,
        platform_bounds=PlatformBounds(
            min_epoch_length_s=setting("GOVERNANCE_MIN_EPOCH_LENGTH_S"),
            max_epoch_length_s=setting("GOVERNANCE_MAX_EPOCH_LENGTH_S"),
            min_attribution_fdr_bps=setting("GOVERNANCE_MIN_ATTRIBUTION_FDR_BPS"),
            max_attribution_fdr_bps=setting("GOVERNANCE_MAX_ATTRIBUTION_FDR_BPS"),
            min_attribution_top_groups=setting("GOVERNANCE_MIN_ATTRIBUTION_TOP_GROUPS"),
            max_attribution_top_groups=setting("GOVERNANCE_MAX_ATTRIBUTION_TOP_GROUPS")),
    )


def contracts(deployment: GovernanceDeployment, client: ChainClient) -> ChainGovernance:
    return governance_contracts(client, votes=deployment.votes_address, timelock=deployment.timelock_address,
                                governor=deployment.governor_address, parameters=deployment.parameters_address,
                                deployed_at_block=deployment.deployed_at_block)


def deployment_record(*, client: ChainClient, token_address: str, votes_address: str, timelock_address: str,
                      governor_address: str, parameters_address: str,
                      deployed_at_block: int) -> GovernanceDeployment:
    """Record (or return the recorded) governance deployment of this chain."""
    deployment, _ = deployment_get_or_record(
        GovernanceDeployment, client=client,
        defaults={"token_address": token_address, "votes_address": votes_address,
                  "timelock_address": timelock_address, "governor_address": governor_address,
                  "parameters_address": parameters_address, "deployed_at_block": deployed_at_block})
    return deployment


def deployment_ensure(*, client: ChainClient | None = None, deploy: bool | None = None) -> GovernanceDeployment:
    """The governance deployment of the current chain: the recorded one, else the configured addresses,
    else (with `REWARDS_CHAIN_AUTO_DEPLOY`, development, or `deploy=True`, `manage.py governance_deploy`) a
    fresh deployment over rewards' OPEN token whose registry starts from the current fee policy."""
    client = client or get_chain_client()
    deploy = settings.REWARDS_CHAIN_AUTO_DEPLOY if deploy is None else deploy
    found = recorded_on_chain(GovernanceDeployment, client=client)
    if found is not None:
        return found
    rewards_deployment = rewards_deployment_ensure(client=client)
    configured = (settings.GOVERNANCE_VOTES_ADDRESS, settings.GOVERNANCE_TIMELOCK_ADDRESS,
                  settings.GOVERNANCE_GOVERNOR_ADDRESS, settings.GOVERNANCE_PARAMETERS_ADDRESS)
    if all(configured):
        votes, timelock, governor, parameters = configured
        return deployment_record(client=client, token_address=rewards_deployment.token_address,
                                 votes_address=votes, timelock_address=timelock, governor_address=governor,
                                 parameters_address=parameters,
                                 deployed_at_block=settings.GOVERNANCE_DEPLOYED_AT_BLOCK)
    if not deploy:
        raise ChainUnavailable("No governance deployment is recorded for this chain and auto-deploy is off: set "
                               "GOVERNANCE_VOTES_ADDRESS, GOVERNANCE_TIMELOCK_ADDRESS, GOVERNANCE_GOVERNOR_ADDRESS "
                               "and GOVERNANCE_PARAMETERS_ADDRESS.")
    policy = rewards_services.fee_policy_current()
    deployed = deploy_governance(client, token_address=rewards_deployment.token_address,
                                 initial_split=FeeSplit(policy.protocol_bps, policy.owner_bps, policy.contributors_bps),
                                 parameters=parameters_from_settings())
    logger.info("deployed vOPEN %s, timelock %s, governor %s, parameters %s", deployed.votes.address,
                deployed.timelock.address, deployed.governor.address, deployed.parameters.address)
    return deployment_record(client=client, token_address=rewards_deployment.token_address,
                             votes_address=deployed.votes.address, timelock_address=deployed.timelock.address,
                             governor_address=deployed.governor.address,
                             parameters_address=deployed.parameters.address,
                             deployed_at_block=deployed.deployed_at_block)


def deployment_recorded(*, client: ChainClient) -> GovernanceDeployment | None:
    """The recorded deployment of this chain, or None; never deploys (reconciliation must not)."""
    return recorded_on_chain(GovernanceDeployment, client=client)


def staking_contract(deployment: GovernanceDeployment, client: ChainClient) -> StakingContract | None:
    return StakingContract(client, deployment.staking_address) if deployment.staking_address else None


def staking_parameters_from_settings() -> StakingParameters:
    return StakingParameters(cooldown_s=setting("GOVERNANCE_STAKE_COOLDOWN_S"),
                             max_slash_bps=setting("GOVERNANCE_STAKE_MAX_SLASH_BPS"))


def staking_ensure(*, client: ChainClient | None = None, deploy: bool | None = None) -> GovernanceDeployment:
    """The governance deployment with its ContributorStakes: the recorded one, else the configured address
    (`GOVERNANCE_STAKING_ADDRESS`), else (auto-deploy, development, or `deploy=True`) a fresh one over OPEN
    whose admin is the governance timelock (only a passed proposal changes who may slash) and whose slasher is
    the platform's key."""
    client = client or get_chain_client()
    deploy = settings.REWARDS_CHAIN_AUTO_DEPLOY if deploy is None else deploy
    deployment = deployment_ensure(client=client, deploy=deploy)
    if deployment.staking_address:
        return deployment
    configured = setting("GOVERNANCE_STAKING_ADDRESS")
    if configured:
        address, block = configured, setting("GOVERNANCE_STAKING_DEPLOYED_AT_BLOCK")
    elif deploy:
        deployed = deploy_staking(client, token_address=deployment.token_address, admin=deployment.timelock_address,
                                  slasher=client.address, parameters=staking_parameters_from_settings())
        address, block = deployed.staking.address, deployed.deployed_at_block
        logger.info("deployed contributor stakes %s", address)
    else:
        raise ChainUnavailable("No contributor-stakes contract is recorded for this chain and auto-deploy is off: "
                               "set GOVERNANCE_STAKING_ADDRESS.")
    GovernanceDeployment.objects.filter(pk=deployment.pk, staking_address="").update(
        staking_address=address, staking_deployed_at_block=block)
    deployment.refresh_from_db()
    return deployment


def dev_signer_for(address: str, *, client: ChainClient) -> LocalAccount | None:
    """The development chain's own key for `address` (eth-tester's funded accounts), when development
    signing is on (`GOVERNANCE_DEV_SIGNING`) and this is the in-process chain; None otherwise: the user's
    wallet signs."""
    if not setting("GOVERNANCE_DEV_SIGNING") or client.chain_id != DEV_CHAIN_ID:
        return None
    for key in get_default_account_keys():
        account = Account.from_key(key.to_bytes())
        if account.address.lower() == (address or "").lower():
            return account
    return None
