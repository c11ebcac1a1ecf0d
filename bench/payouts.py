"""Payout benchmarks: Merkle tree build time and on-chain gas of the cumulative distributor.

    .venv/bin/python bench/payouts.py [--quick] [--json]

Gas is measured on the in-process py-evm chain (Prague rules, the same bytecode as production) with a
100,000-account tree, so proofs have the depth a real epoch would have. Governance and stakes are measured
there too: one fee-split proposal from proposing to execution (propose, vote, queue, execute), the execute of
each other parameter change the registry takes (epoch length and share policy, first set and later change:
``gas_governance_execute_<kind>[_first]``), and one contributor's stake, unstake request, withdrawal, slash
and ``releasePool`` (the slashed OPEN paid to the treasury) (``gas_governance_*`` / ``gas_stake_*``). Fee
settlement is measured on PostgreSQL (``rewards/bench.py``). Targets: tree build <= 3 s at 100k accounts, root
update ~45k gas, first claim <= 110k gas, >= 2,000 fees settled per second.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewards.chain import (  # noqa: E402  (the repo root must be on sys.path first)
    ChainClient,
    ClaimRequest,
    CumulativeRewardsTree,
    checksum_address,
    deploy_rewards,
)
from rewards.chain.governance import FeeSplit, SharePolicyValues, deploy_governance  # noqa: E402
from rewards.chain.staking import StakingParameters, deploy_staking, new_request_id  # noqa: E402

OPEN = 10**18
CLAIM_MANY_BATCH = 20


def measure_settled_per_s(quick: bool) -> dict[str, float] | None:
    """Fee settlement on PostgreSQL through the real path (see ``rewards/bench.py``): inferences record
    their fee with ``fee_record`` (one transaction each), then ``fee_settle_batch`` books the backlog
    with 1, 2 (and 4) settling processes. Returns ``settled_per_s`` (the best round, wall clock) with
    its companions (``settled_per_cpu_s``, ``recorded_per_s``, ``queries_per_settlement``, ...), or None
    when PostgreSQL cannot be reached (the keys then stay out of the JSON).

    PostgreSQL is ``DATABASE_URL``'s server (default postgres://postgres@127.0.0.1:5432/test); the
    bench works in its own ``lineage_bench_payouts`` database, copied from a migrated template it keeps.
    """
    import psycopg

    from rewards.bench import settled_per_s

    try:
        return settled_per_s(quick=quick)
    except psycopg.OperationalError as error:
        print(f"settlement throughput not measured: PostgreSQL unreachable ({error})", file=sys.stderr)
        return None


def random_rewards(count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    return {checksum_address(rng.randbytes(20)): rng.randrange(1, 1_000) * OPEN // 100 for _ in range(count)}


def time_tree_build(rewards: dict[str, int], repeats: int) -> tuple[float, float, CumulativeRewardsTree]:
    """Best wall-clock and best CPU seconds over ``repeats`` builds. CPU time is reported too because
    the machine is shared: wall time swings with the other jobs, CPU time much less."""
    best_wall, best_cpu, tree = float("inf"), float("inf"), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        tree = CumulativeRewardsTree.build(rewards)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, tree


def measure_gas(tree: CumulativeRewardsTree, rewards: dict[str, int], claims: int) -> dict[str, float]:
    """Root updates, single claims and relayed batches, first and later (after the next epoch)."""
    client = ChainClient.in_process()
    deployment = deploy_rewards(client, supply=10**12 * OPEN)
    distributor = deployment.distributor
    deployment.token.transfer(distributor.address, 2 * (tree.total_cumulative + OPEN))

    accounts = list(rewards)
    singles = accounts[:claims]
    batch = accounts[claims:claims + CLAIM_MANY_BATCH]

    gas_root_first = distributor.publish_tree(tree, 1).gas_used
    first_claims = [distributor.claim(a, tree.amount_of(a), tree.proof(a)).gas_used for a in singles]
    first_batch = distributor.claim_many([ClaimRequest.from_tree(tree, a) for a in batch]).gas_used

    # Epoch 2: everyone earned a little more; accounts now hold OPEN and have claimed before.
    next_tree = CumulativeRewardsTree.build({a: amount + OPEN for a, amount in rewards.items()})
    gas_root = distributor.publish_tree(next_tree, 2).gas_used
    later_claims = [distributor.claim(a, next_tree.amount_of(a), next_tree.proof(a)).gas_used for a in singles]
    later_batch = distributor.claim_many([ClaimRequest.from_tree(next_tree, a) for a in batch]).gas_used
    return {
        "gas_root_first": gas_root_first,
        "gas_root": gas_root,
        # The very first claim also turns totalClaimed from zero to non-zero; report the typical one.
        "gas_claim_very_first": first_claims[0],
        "gas_claim": statistics.median(first_claims[1:]),
        "gas_claim_later": statistics.median(later_claims),
        "gas_claim_many_per_account": first_batch / CLAIM_MANY_BATCH,
        "gas_claim_many_later_per_account": later_batch / CLAIM_MANY_BATCH,
        "proof_depth": len(tree.proof(singles[0])),
    }


def _pass_proposal(gov, chain, voters, actions) -> dict[str, int]:
    """One proposal from proposing to execution, every voter for it: the gas of each step."""
    gas = {"propose": gov.governor.propose(actions, sender=voters[0]).gas_used}
    chain.mine_blocks(1)  # the voting delay
    gas["vote_first"] = gov.governor.cast_vote(actions.proposal_id, "for", sender=voters[0]).gas_used
    gas["vote"] = gov.governor.cast_vote(actions.proposal_id, "for", sender=voters[1]).gas_used
    chain.mine_blocks(10)  # the voting period
    gas["queue"] = gov.governor.queue(actions).gas_used
    gas["execute"] = gov.governor.execute(actions).gas_used
    return gas


def measure_governance_gas() -> dict[str, int]:
    """Proposals through the governor and timelock (two voters, so the second vote is a typical one), one per
    kind of parameter change the registry takes (fee split, epoch length, share policy; the last two twice:
    the first sets a value the registry holds unset, zero, which costs more storage than changing it later),
    and one stake's life on ContributorStakes (approve not counted: it is the ERC-20's), with the release of
    what was slashed from it."""
    client = ChainClient.in_process()
    chain, accounts = client.local_chain, client.local_chain.accounts
    rewards = deploy_rewards(client, supply=10**12 * OPEN)
    gov = deploy_governance(client, token_address=rewards.token.address, initial_split=FeeSplit(1_000, 3_000, 6_000))
    stakes = deploy_staking(client, token_address=rewards.token.address, admin=gov.timelock.address,
                            slasher=client.address, parameters=StakingParameters(cooldown_s=60)).staking
    voters = accounts[2:4]
    for voter in voters:
        rewards.token.transfer(voter.address, 1_000 * OPEN)
        gov.votes.wrap(rewards.token, 1_000 * OPEN, sender=voter)
        gov.votes.delegate(voter.address, sender=voter)
    fee_split = _pass_proposal(gov, chain, voters,
                               gov.parameters.fee_split_proposal(FeeSplit(500, 2_500, 7_000), "bench: data 70%"))
    results = {f"gas_governance_{step}": gas for step, gas in fee_split.items()}
    results["gas_governance_execute_fee_split"] = fee_split["execute"]
    registry = gov.parameters
    other_changes = {  # kind: (first set, later change)
        "epoch_length": [registry.epoch_length_proposal(seconds, f"bench: epochs of {seconds} s")
                         for seconds in (86_400, 7 * 86_400)],
        "share_policy": [registry.share_policy_proposal(policy, f"bench: fdr {policy.fdr_bps} bps, "
                                                                f"{policy.top_groups} groups")
                         for policy in (SharePolicyValues(1_000, 50), SharePolicyValues(500, 100))],
    }
    for kind, (first, later) in other_changes.items():
        results[f"gas_governance_execute_{kind}_first"] = _pass_proposal(gov, chain, voters, first)["execute"]
        results[f"gas_governance_execute_{kind}"] = _pass_proposal(gov, chain, voters, later)["execute"]
    in_force = (registry.fee_split(), registry.epoch_length_s(), registry.share_policy())
    if in_force != (FeeSplit(500, 2_500, 7_000), 7 * 86_400, SharePolicyValues(500, 100)):
        raise RuntimeError(f"the executed proposals did not set the registry: {in_force}")
    results["gas_governance_delegate"] = gov.votes.delegate(voters[0].address, sender=voters[1]).gas_used

    staker = accounts[4]
    rewards.token.transfer(staker.address, 100 * OPEN)
    results["gas_stake_first"] = stakes.stake(rewards.token, 1, 40 * OPEN, new_request_id(), sender=staker).gas_used
    results["gas_stake"] = stakes.stake(rewards.token, 1, 10 * OPEN, new_request_id(), sender=staker).gas_used
    results["gas_stake_unstake"] = stakes.request_unstake(1, 20 * OPEN, new_request_id(), sender=staker).gas_used
    results["gas_stake_slash"] = stakes.slash(staker.address, 1, 5 * OPEN, new_request_id()).gas_used
    # The slashed OPEN leaves the Datanet's pool for the treasury (the platform's key, which holds OPEN already),
    # as rewards.services.slash_releases sends it: part of the pool, then the rest (the pool emptied: the usual
    # release, one per booked slash, and cheaper by the storage refund).
    treasury = client.address
    results["gas_stake_release_pool_partial"] = stakes.release_pool(1, treasury, 2 * OPEN).gas_used
    results["gas_stake_release_pool"] = stakes.release_pool(1, treasury, 3 * OPEN).gas_used
    chain.tester.time_travel(chain.tester.get_block_by_number("pending")["timestamp"] + 61)
    results["gas_stake_withdraw"] = stakes.withdraw(1, sender=staker).gas_used
    return results


def run(quick: bool, settled_per_s: Callable[[bool], dict | None] = measure_settled_per_s) -> dict[str, float]:
    repeats = 1 if quick else 3
    rewards_10k = random_rewards(10_000, seed=10)
    rewards_100k = random_rewards(100_000, seed=100)
    tree_s_10k, tree_cpu_s_10k, _ = time_tree_build(rewards_10k, repeats)
    tree_s_100k, tree_cpu_s_100k, tree_100k = time_tree_build(rewards_100k, repeats)

    start = time.perf_counter()
    proof_accounts = list(rewards_100k)[:10_000]
    for account in proof_accounts:
        tree_100k.proof(account)
    proofs_per_s = len(proof_accounts) / (time.perf_counter() - start)

    results: dict[str, float] = {
        "tree_s_10k": round(tree_s_10k, 3),
        "tree_s_100k": round(tree_s_100k, 3),
        "tree_cpu_s_10k": round(tree_cpu_s_10k, 3),
        "tree_cpu_s_100k": round(tree_cpu_s_100k, 3),
        "proofs_per_s_100k": round(proofs_per_s),
        **measure_gas(tree_100k, rewards_100k, claims=5 if quick else 20),
        **measure_governance_gas(),
    }
    results.update(settled_per_s(quick) or {})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, fewer claims (well under 2 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    results = run(args.quick)
    print(f"tree build   10k accounts: {results['tree_s_10k']:.3f} s wall, {results['tree_cpu_s_10k']:.3f} s CPU")
    print(f"tree build  100k accounts: {results['tree_s_100k']:.3f} s wall, {results['tree_cpu_s_100k']:.3f} s CPU"
          "   (target <= 3 s)")
    print(f"proofs from 100k tree    : {results['proofs_per_s_100k']:,} /s (depth {results['proof_depth']})")
    print(f"gas setMerkleRoot first  : {results['gas_root_first']:,}")
    print(f"gas setMerkleRoot        : {results['gas_root']:,}   (target ~45k)")
    print(f"gas claim, very first    : {results['gas_claim_very_first']:,}")
    print(f"gas claim, first/account : {results['gas_claim']:,.0f}   (target <= 110k)")
    print(f"gas claim, later         : {results['gas_claim_later']:,.0f}")
    print(f"gas claimMany per account: {results['gas_claim_many_per_account']:,.0f} first, "
          f"{results['gas_claim_many_later_per_account']:,.0f} later (batches of {CLAIM_MANY_BATCH})")
    print(f"gas propose / vote       : {results['gas_governance_propose']:,} / "
          f"{results['gas_governance_vote_first']:,} first, {results['gas_governance_vote']:,} next")
    print(f"gas queue / execute      : {results['gas_governance_queue']:,} / {results['gas_governance_execute']:,}"
          f"   (execute sets the fee split through the timelock)")
    for kind, words in (("epoch_length", "epoch length"), ("share_policy", "share policy")):
        print(f"gas execute {words:<13}: {results[f'gas_governance_execute_{kind}_first']:,} first set, "
              f"{results[f'gas_governance_execute_{kind}']:,} changed")
    print(f"gas delegate (redelegate): {results['gas_governance_delegate']:,}")
    print(f"gas stake                : {results['gas_stake_first']:,} first, {results['gas_stake']:,} more")
    print(f"gas unstake / withdraw   : {results['gas_stake_unstake']:,} / {results['gas_stake_withdraw']:,}")
    print(f"gas slash                : {results['gas_stake_slash']:,}")
    print(f"gas releasePool          : {results['gas_stake_release_pool']:,} emptying the pool, "
          f"{results['gas_stake_release_pool_partial']:,} part of it (slashed OPEN to the treasury)")
    if "settled_per_s" in results:
        rounds = ", ".join(f"{results[key]:,} with {key.rsplit('_', 1)[1].removesuffix('settler')}"
                           for key in results if key.startswith("settled_per_s_"))
        print(f"fees settled (PostgreSQL): {results['settled_per_s']:,} /s   (target >= 2,000; {rounds} settler(s))")
        if "settled_per_cpu_s" in results:
            print(f"fees settled per CPU-s   : {results['settled_per_cpu_s']:,} (settlers + their PostgreSQL backends)")
        print(f"queries per settlement   : {results['queries_per_settlement']} ({results['queries_per_batch']} per batch "
              f"of {results['settle_batch']})")
        print(f"fees recorded            : {results['recorded_per_s']:,} /s (one transaction and commit each)")
        if "end_to_end_per_s" in results:
            print(f"recorded and settled     : {results['end_to_end_per_s']:,} /s end to end")
        print(f"ledger check             : {'balanced' if results['ledger_ok'] else 'FAILED'}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
