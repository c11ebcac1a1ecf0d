"""Reconciliation: compare the database with the chain (root per epoch, distributor funding, claimed per
account) and report each disagreement as a `ReconciliationIssue`; nothing is patched.
"""

from .. import ledger
from ..chainio import contracts, deployment_ensure, get_chain_client, report_issue
from ..ledger import format_open
from ..models import ChainClaim, Epoch, EpochState, PayoutLeaf
from .claims import claims_index


def chain_reconcile(*, client=None) -> list:
    """Compare the database with the chain: root per epoch, distributor funding, claimed per account.
    Each disagreement becomes an open `ReconciliationIssue` (logged); nothing is patched."""
    client = client or get_chain_client()
    deployment = deployment_ensure(client=client)
    claims_index(client=client)
    token, distributor = contracts(deployment, client)
    block = client.confirmed_block_number()
    issues = []

    def at(contract, name, *args):
        return contract.contract.functions[name](*args).call(block_identifier=block)

    posted = Epoch.objects.filter(deployment=deployment, state__in=[EpochState.ROOT_POSTED, EpochState.RELAYED,
                                                                    EpochState.CLOSED]).order_by("-number").first()
    chain_epoch, chain_root = at(distributor, "epoch"), "0x" + bytes(at(distributor, "merkleRoot")).hex()
    if posted is None and chain_epoch != 0 or posted is not None and (chain_epoch, chain_root) != (posted.number, posted.root):
        issues.append(report_issue(
            kind="root_mismatch", fingerprint=f"reconcile_root:{deployment.pk}:{chain_epoch}:{chain_root}",
            deployment=deployment, epoch=posted,
            detail=f"Chain has epoch {chain_epoch} root {chain_root}; the database's last posted epoch is "
                   f"{posted.number if posted else 'none'} with root {posted.root if posted else '-'}."))
    funded = Epoch.objects.filter(deployment=deployment).exclude(
        state__in=[EpochState.FROZEN, EpochState.TREE_BUILT]).order_by("-number").first()
    expected_funding = funded.total_cumulative if funded else 0
    balance = at(token, "balanceOf", distributor.address)
    total_claimed = at(distributor, "totalClaimed")
    if balance + total_claimed != expected_funding:
        issues.append(report_issue(
            kind="funding_mismatch", fingerprint=f"funding:{deployment.pk}:{balance}:{total_claimed}:{expected_funding}",
            deployment=deployment,
            detail=f"Distributor balance {format_open(balance)} + claimed {format_open(total_claimed)} OPEN != "
                   f"funded {format_open(expected_funding)} OPEN recorded in the database."))
    booked = ledger.grouped_sums(ChainClaim.objects.filter(deployment=deployment), "address")
    addresses = set(PayoutLeaf.objects.filter(epoch__deployment=deployment).values_list("address", flat=True)) | set(booked)
    for address in sorted(addresses):
        on_chain = at(distributor, "claimed", address)
        if on_chain != booked.get(address, 0):
            issues.append(report_issue(
                kind="claimed_mismatch", fingerprint=f"claimed:{deployment.pk}:{address}:{on_chain}",
                deployment=deployment,
                detail=f"{address} has claimed {format_open(on_chain)} OPEN on chain; the database recorded "
                       f"{format_open(booked.get(address, 0))} OPEN.", data={"address": address}))
    return [issue for issue in issues if issue is not None]
