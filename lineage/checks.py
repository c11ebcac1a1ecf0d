"""Deployment checks (`manage.py check --deploy`): settings that are fine for a development run and
wrong in production. They only speak when DEBUG is off."""

from django.conf import settings
from django.core.checks import Error, Tags, register

# eth-tester funds its development accounts from the private keys 1, 2, 3, ... (public knowledge); the
# default CHAIN_PRIVATE_KEY is the first. Any key this small signs for whoever reads the source.
PUBLIC_KEY_LIMIT = 2**32


def is_public_development_key(key: str) -> bool:
    try:
        return int(key.strip().removeprefix("0x").removeprefix("0X") or "0", 16) < PUBLIC_KEY_LIMIT
    except ValueError:
        return False


@register(Tags.security, deploy=True)
def check_chain(app_configs=None, **kwargs):
    if settings.DEBUG:
        return []
    errors = []
    if is_public_development_key(settings.CHAIN_PRIVATE_KEY):
        errors.append(Error(
            "CHAIN_PRIVATE_KEY is a public development key (eth-tester's dev account): anyone can sign the "
            "treasury's and the relayer's transactions with it.",
            hint="Set CHAIN_PRIVATE_KEY (or CHAIN_PRIVATE_KEY_FILE) to the deployment's own signing key.",
            id="lineage.E001",
        ))
    if not settings.CHAIN_RPC_URL:
        errors.append(Error(
            "CHAIN_RPC_URL is empty: every process runs its own in-process development chain, so rewards, "
            "deposits and claims are neither shared between web and workers nor kept across restarts.",
            hint="Set CHAIN_RPC_URL (or CHAIN_RPC_URL_FILE) to the JSON-RPC URL of a real node.",
            id="lineage.E002",
        ))
    return errors
