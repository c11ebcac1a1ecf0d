"""Rewards (the chain, wallets, epochs, claims, fee settlement) and governance (its contracts and the bounds on
what a proposal may set), with their queue routes and beat entries."""

from datetime import timedelta

from celery.schedules import crontab

from .environment import DEBUG, env, secret
from .queues import CELERY_BEAT_SCHEDULE, CELERY_TASK_ROUTES

# --- Rewards
# Chain: empty CHAIN_RPC_URL = an in-process eth-tester chain (one process only); the run profile sets
# http://127.0.0.1:8545 served by `manage.py chain_node`. The default key is eth-tester's first dev
# account (public knowledge): never use it on a real chain (`check --deploy` refuses it, and an empty
# CHAIN_RPC_URL, when DEBUG=0: lineage/checks.py).
CHAIN_RPC_URL = secret("CHAIN_RPC_URL", default="")  # a provider URL may carry an API key
CHAIN_PRIVATE_KEY = secret("CHAIN_PRIVATE_KEY", default="0x" + "0" * 63 + "1")
CHAIN_CONFIRMATIONS = env.int("CHAIN_CONFIRMATIONS", default=1)
CHAIN_ID = env.int("CHAIN_ID", default=131277322940537)  # eth-tester's chain id
CHAIN_RECEIPT_TIMEOUT_S = env.float("CHAIN_RECEIPT_TIMEOUT_S", default=120.0)
CHAIN_NODE_HOST = env.str("CHAIN_NODE_HOST", default="127.0.0.1")
CHAIN_NODE_PORT = env.int("CHAIN_NODE_PORT", default=8545)
WALLET_CHANGE_DELAY_HOURS = env.int("WALLET_CHANGE_DELAY_HOURS", default=48)
REWARDS_SIWE_DOMAIN = env.str("REWARDS_SIWE_DOMAIN", default="")  # default: SITE_URL's host
REWARDS_SIWE_TTL_MINUTES = env.int("REWARDS_SIWE_TTL_MINUTES", default=15)
REWARDS_CHAIN_AUTO_DEPLOY = env.bool("REWARDS_CHAIN_AUTO_DEPLOY", default=True)
REWARDS_TOKEN_ADDRESS = env.str("REWARDS_TOKEN_ADDRESS", default="")
REWARDS_DISTRIBUTOR_ADDRESS = env.str("REWARDS_DISTRIBUTOR_ADDRESS", default="")
REWARDS_DEPLOYED_AT_BLOCK = env.int("REWARDS_DEPLOYED_AT_BLOCK", default=0)
REWARDS_DEPOSIT_ADDRESS = env.str("REWARDS_DEPOSIT_ADDRESS", default="")  # default: the treasury (signer)
REWARDS_DEV_TOKEN_SUPPLY = env.int("REWARDS_DEV_TOKEN_SUPPLY", default=10**9 * 10**18)
REWARDS_RELAY_THRESHOLD = env.int("REWARDS_RELAY_THRESHOLD", default=0)  # base units; 0 = no relaying at close
REWARDS_RELAY_CLAIMS = env.bool("REWARDS_RELAY_CLAIMS", default=True)  # the "claim for me" button
# Starter credit: every account created by signing up gets this much OPEN inference credit once, from the
# grants account (`rewards.services.credit_starter_grant`). In OPEN, decimals allowed ("0.5"); 0 = no grant.
# Off by default in production: granted credit spent on one's own model comes back as claimable earnings, so a
# grant per free account is a faucet for whoever makes many accounts (docs/rewards.md).
REWARDS_STARTER_GRANT_OPEN = env.str("REWARDS_STARTER_GRANT_OPEN", default="10" if DEBUG else "0")
REWARDS_RELAY_BATCH = env.int("REWARDS_RELAY_BATCH", default=50)
REWARDS_EPOCH_LEASE_S = env.int("REWARDS_EPOCH_LEASE_S", default=900)
# How often earnings epochs close: an epoch closes once this long has passed since the last one froze. A passed
# governance proposal (`setEpochLength` on the parameter registry) overrides it (docs/governance.md); the beat
# checks every REWARDS_EPOCH_CHECK_EVERY_S whether a close is due.
REWARDS_EPOCH_LENGTH_S = env.int("REWARDS_EPOCH_LENGTH_S", default=7 * 86_400)
REWARDS_EPOCH_CHECK_EVERY_S = env.int("REWARDS_EPOCH_CHECK_EVERY_S", default=300)
REWARDS_ROWS_PER_CONTRIBUTOR = env.int("REWARDS_ROWS_PER_CONTRIBUTOR", default=10)
# Fees are held per inference and booked in batches (`rewards.services.fee_settle_batch`): by beat every
# REWARDS_SETTLE_EVERY_S, and on demand (at most one queued run per REWARDS_SETTLE_DEBOUNCE_S).
REWARDS_SETTLE_BATCH = env.int("REWARDS_SETTLE_BATCH", default=500)
REWARDS_SETTLE_EVERY_S = env.float("REWARDS_SETTLE_EVERY_S", default=5.0)
REWARDS_SETTLE_DEBOUNCE_S = env.int("REWARDS_SETTLE_DEBOUNCE_S", default=1)
REWARDS_SETTLE_MAX_S = env.float("REWARDS_SETTLE_MAX_S", default=30.0)
# A fee held when a queued answer was given waits this long for its receipt; then it is settled without one
# (as an empty receipt: the fee policy's fallback), so a lost attribution task never holds credit forever.
REWARDS_RECEIPT_WAIT_S = env.int("REWARDS_RECEIPT_WAIT_S", default=3600)
CELERY_BEAT_SCHEDULE.update({
    "rewards-epoch-close": {"task": "rewards.tasks.epoch_close_scheduled",
                            "schedule": timedelta(seconds=REWARDS_EPOCH_CHECK_EVERY_S),
                            "options": {"expires": REWARDS_EPOCH_CHECK_EVERY_S}},
    "rewards-index-deposits": {"task": "rewards.tasks.chain_index_deposits", "schedule": timedelta(minutes=1)},
    "rewards-index-claims": {"task": "rewards.tasks.chain_index_claims", "schedule": timedelta(minutes=1)},
    "rewards-reconcile": {"task": "rewards.tasks.chain_reconcile", "schedule": crontab(minute=17)},
    "rewards-settle-fees": {"task": "rewards.tasks.fees_settle", "schedule": timedelta(seconds=REWARDS_SETTLE_EVERY_S),
                            "options": {"expires": 2 * REWARDS_SETTLE_EVERY_S}},  # no pile-up while workers are down
})

# --- Governance (docs/governance.md)
# vOPEN + timelock + governor + parameter registry. With REWARDS_CHAIN_AUTO_DEPLOY (development) they are
# deployed next to the token and distributor; otherwise all four addresses must be set. The defaults
# are development values: small, so a whole proposal runs in a few seconds of blocks.
GOVERNANCE_VOTES_ADDRESS = env.str("GOVERNANCE_VOTES_ADDRESS", default="")
GOVERNANCE_TIMELOCK_ADDRESS = env.str("GOVERNANCE_TIMELOCK_ADDRESS", default="")
GOVERNANCE_GOVERNOR_ADDRESS = env.str("GOVERNANCE_GOVERNOR_ADDRESS", default="")
GOVERNANCE_PARAMETERS_ADDRESS = env.str("GOVERNANCE_PARAMETERS_ADDRESS", default="")
GOVERNANCE_DEPLOYED_AT_BLOCK = env.int("GOVERNANCE_DEPLOYED_AT_BLOCK", default=0)
GOVERNANCE_VOTING_DELAY_BLOCKS = env.int("GOVERNANCE_VOTING_DELAY_BLOCKS", default=1)
GOVERNANCE_VOTING_PERIOD_BLOCKS = env.int("GOVERNANCE_VOTING_PERIOD_BLOCKS", default=10)
GOVERNANCE_PROPOSAL_THRESHOLD = env.int("GOVERNANCE_PROPOSAL_THRESHOLD", default=0)  # vOPEN base units
GOVERNANCE_QUORUM_PERCENT = env.int("GOVERNANCE_QUORUM_PERCENT", default=4)
GOVERNANCE_TIMELOCK_DELAY_S = env.int("GOVERNANCE_TIMELOCK_DELAY_S", default=1)
GOVERNANCE_MAX_PROTOCOL_BPS = env.int("GOVERNANCE_MAX_PROTOCOL_BPS", default=2_000)
GOVERNANCE_MAX_OWNER_BPS = env.int("GOVERNANCE_MAX_OWNER_BPS", default=5_000)
GOVERNANCE_MIN_CONTRIBUTORS_BPS = env.int("GOVERNANCE_MIN_CONTRIBUTORS_BPS", default=4_000)
CELERY_TASK_ROUTES["governance.tasks.chain_*"] = {"queue": "chain"}
CELERY_BEAT_SCHEDULE["governance-index"] = {"task": "governance.tasks.chain_index_governance",
                                            "schedule": timedelta(minutes=1)}
