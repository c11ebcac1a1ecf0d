"""`python manage.py governance_deploy`: deploy governance (vOPEN, timelock, governor, parameter registry) and
the contributor stakes contract on the chain at `CHAIN_RPC_URL`, over rewards' OPEN token, and record them.

The development chain node deploys them at start; this is the command for any other chain (a testnet, or
production once its parameters are set: `GOVERNANCE_*` settings, read when deploying, immutable afterwards).
Safe to run again: a deployment already recorded or configured for this chain is reported, never repeated. It
prints the settings that name the contracts, for the other processes' environment.
"""

from django.core.management.base import BaseCommand, CommandError

from rewards.chain.staking import DEFAULT_ADMIN_ROLE, SLASHER_ROLE
from rewards.chainio import ChainUnavailable, get_chain_client

from ...chainio import contracts, deployment_recorded, staking_contract, staking_ensure


class Command(BaseCommand):
    help = ("Deploy governance (vOPEN, timelock, governor, parameter registry) and the contributor stakes on the "
            "chain at CHAIN_RPC_URL over rewards' OPEN token, record them and print their settings; once per chain.")

    def handle(self, *args, **options):
        client = get_chain_client()
        if client.local_chain is not None:
            raise CommandError("This process runs its own in-process chain (CHAIN_RPC_URL is empty): contracts deployed "
                               "here would vanish when it exits. In development `manage.py chain_node` deploys them at "
                               "start; otherwise set CHAIN_RPC_URL (and CHAIN_PRIVATE_KEY) to the chain to deploy on.")
        before = deployment_recorded(client=client)
        had_staking = bool(before and before.staking_address)
        try:
            deployment = staking_ensure(client=client, deploy=True)
        except ChainUnavailable as exc:
            raise CommandError(f"{exc} Deploy or configure rewards' OPEN token first.") from exc
        chain = contracts(deployment, client)
        staking = staking_contract(deployment, client)
        if before is None:
            self.stdout.write(self.style.SUCCESS(f"Deployed governance on chain {deployment.chain_id}."))
        else:
            self.stdout.write(f"Governance was already recorded for chain {deployment.chain_id}; nothing deployed.")
        if not had_staking:
            self.stdout.write(self.style.SUCCESS("Recorded the contributor stakes contract."))
        self.stdout.write(
            f"voting delay {chain.governor.voting_delay()} blocks, voting period {chain.governor.voting_period()} "
            f"blocks, proposal threshold {chain.governor.proposal_threshold()} (base units), timelock delay "
            f"{chain.timelock.min_delay()} s; stakes: cooldown {staking.cooldown_s()} s, at most "
            f"{staking.max_slash_bps()} bps per slash")
        if not staking.has_role(SLASHER_ROLE, client.address):
            self.stderr.write(f"The platform's key {client.address} does not hold SLASHER_ROLE on the stakes contract: "
                              "slashes and pool releases will be refused until a proposal grants it.")
        if not staking.has_role(DEFAULT_ADMIN_ROLE, deployment.timelock_address):
            self.stderr.write("The governance timelock is not the stakes contract's admin.")
        for name, value in (("GOVERNANCE_VOTES_ADDRESS", deployment.votes_address),
                            ("GOVERNANCE_TIMELOCK_ADDRESS", deployment.timelock_address),
                            ("GOVERNANCE_GOVERNOR_ADDRESS", deployment.governor_address),
                            ("GOVERNANCE_PARAMETERS_ADDRESS", deployment.parameters_address),
                            ("GOVERNANCE_DEPLOYED_AT_BLOCK", deployment.deployed_at_block),
                            ("GOVERNANCE_STAKING_ADDRESS", deployment.staking_address),
                            ("GOVERNANCE_STAKING_DEPLOYED_AT_BLOCK", deployment.staking_deployed_at_block)):
            self.stdout.write(f"{name}={value}")
