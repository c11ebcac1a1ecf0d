"""Settings of governance's pages, of contributor stakes and of the governed parameters' bounds
(docs/governance.md).

Each value is `settings.<NAME>` when lineage/settings.py defines it, else the environment variable of that
name, else the embedded default below (development values). Read at call time, so a test's `settings`
fixture overrides them like any other setting.
"""

import environ
from django.conf import settings

_env = environ.Env()

# name: (cast, default)
DEFAULTS: dict[str, tuple[str, object]] = {
    # Relay a user's governance and stake transactions with the development chain's own keys (eth-tester's
    # ten funded accounts, private keys 1 to 10) when their linked wallet is one of them. Never on a real
    # chain: it also needs the chain id of the in-process chain. Off: the page shows the transaction for the
    # user's own wallet to sign and send. Default: DEBUG (on in development, off in production).
    "GOVERNANCE_DEV_SIGNING": ("bool", None),
    "GOVERNANCE_STAKING_ADDRESS": ("str", ""),
    "GOVERNANCE_STAKING_DEPLOYED_AT_BLOCK": ("int", 0),
    # Deployment parameters of ContributorStakes (immutable once deployed).
    "GOVERNANCE_STAKE_COOLDOWN_S": ("int", 300),
    "GOVERNANCE_STAKE_MAX_SLASH_BPS": ("int", 5_000),
    # The slash rule: once this many of a contributor's rows in a Datanet are rejected with a reason naming
    # the word below (and not yet used as evidence), this share of their stake there goes to the Datanet's pool.
    "GOVERNANCE_SPAM_ROWS_TO_SLASH": ("int", 3),
    "GOVERNANCE_SLASH_BPS": ("int", 2_500),
    "GOVERNANCE_SPAM_REASON_WORD": ("str", "spam"),
    # Upload quota that scales with stake, in a Datanet that requires one: a contributor may add this many rows
    # to its review queue per rolling 24 hours for each required stake's worth of OPEN actively staked on it
    # (rows per day = this × stake ÷ required, rounded down), at most this × the multiple below. The Datanet's
    # owner and curators are exempt, as from the stake itself. 0: no row quota.
    "GOVERNANCE_STAKE_ROWS_PER_DAY": ("int", 1_000),
    "GOVERNANCE_STAKE_ROWS_MAX_MULTIPLE": ("int", 10),
    # Bounds of the governed platform parameters, fixed in the parameter registry when it is deployed: the
    # epoch length (seconds between earnings epoch closes) and attribution's share policy (the
    # false-discovery rate in bps, 100 = 0.01, and the most credit groups paid per answer). A proposal
    # outside them is refused by the registry, in words, before it is proposed.
    "GOVERNANCE_MIN_EPOCH_LENGTH_S": ("int", 3_600),
    "GOVERNANCE_MAX_EPOCH_LENGTH_S": ("int", 30 * 86_400),
    "GOVERNANCE_MIN_ATTRIBUTION_FDR_BPS": ("int", 100),
    "GOVERNANCE_MAX_ATTRIBUTION_FDR_BPS": ("int", 2_000),
    "GOVERNANCE_MIN_ATTRIBUTION_TOP_GROUPS": ("int", 10),
    "GOVERNANCE_MAX_ATTRIBUTION_TOP_GROUPS": ("int", 200),
}

# eth-tester's chain id: development signing is refused on any other chain.
DEV_CHAIN_ID = 131277322940537


def setting(name: str):
    if hasattr(settings, name):
        return getattr(settings, name)
    cast, default = DEFAULTS[name]
    if name == "GOVERNANCE_DEV_SIGNING" and default is None:
        default = settings.DEBUG
    return getattr(_env, cast)(name, default=default)
