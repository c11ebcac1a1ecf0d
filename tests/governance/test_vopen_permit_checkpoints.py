"""vOPEN's ERC20Permit and ERC20Votes checkpoints on the real in-process chain: a holder's signature (EIP-2612)
sets an allowance that anyone may submit, once; voting power moves with the tokens, and the power a holder had
at a past block (what a proposal's snapshot counts) stays as it was."""

import pytest
from eth_account import Account

from rewards.chain import ChainRevert

OPEN = 10**18


def _permit(votes, client, owner, spender: str, value: int, nonce: int, deadline: int):
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                       {"name": "deadline", "type": "uint256"}],
        },
        "primaryType": "Permit",
        "domain": {"name": "Open Votes", "version": "1", "chainId": client.chain_id,
                   "verifyingContract": votes.address},
        "message": {"owner": owner.address, "spender": spender, "value": value, "nonce": nonce, "deadline": deadline},
    }
    signed = Account.sign_typed_data(owner.key, full_message=typed)
    return votes.calldata("permit", owner.address, spender, value, deadline, signed.v,
                          signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def test_a_signed_permit_sets_the_allowance_once_and_past_votes_keep_their_checkpoint(governance):
    gov = governance
    client, votes = gov.chain.client, gov.votes
    owner = gov.holder(gov.chain.wallets[0], 100 * OPEN)
    spender, relayer = gov.chain.wallets[1], gov.chain.wallets[2]
    assert votes._call("nonces", owner.address) == 0
    deadline = client.w3.eth.get_block("latest")["timestamp"] + 3_600

    permit = _permit(votes, client, owner, spender.address, 40 * OPEN, 0, deadline)
    client.send({"to": votes.address, "data": permit}, sender=relayer)  # anyone submits the owner's signature
    assert votes._call("allowance", owner.address, spender.address) == 40 * OPEN
    assert votes._call("nonces", owner.address) == 1
    with pytest.raises(ChainRevert) as replayed:  # the nonce moved on: the same signature no longer verifies
        client.send({"to": votes.address, "data": permit}, sender=relayer)
    assert replayed.value.error_name == "ERC2612InvalidSigner"

    before = client.w3.eth.block_number
    client.send({"to": votes.address, "data": votes.calldata("transferFrom", owner.address, spender.address,
                                                             40 * OPEN)}, sender=spender)
    assert votes.balance_of(spender.address) == 40 * OPEN
    assert votes.votes_of(owner.address) == 60 * OPEN  # power moves with the tokens...
    assert votes.votes_of(spender.address) == 0  # ...and counts only once delegated
    gov.mine(1)
    assert gov.governor.get_votes(owner.address, before) == 100 * OPEN  # the checkpoint at that block stands
    assert gov.governor.get_votes(owner.address, client.w3.eth.block_number - 1) == 60 * OPEN
