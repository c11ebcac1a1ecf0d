"""Slashed stakes go to the Datanet's honest contributors: `slashes_book()`.

A slash moves OPEN from the spammer's stake into the Datanet's reward pool on chain (`staking.stake_slash_run`).
Once its `Slashed` event is indexed (the slash is `done`, with the amount the chain moved), this books that
amount as earnings of the Datanet's other contributors through `rewards.services.slash_book`: pro rata to each
one's accepted rows in the Datanet's latest version, the slashed contributor left out, once per slash (keyed by
its evidence hash, the id the staking contract took once). The next epoch close pays it with their fee
earnings. A Datanet with no version yet, or whose version holds only the slashed contributor's rows, has nobody
to pay: the slash waits and is booked by a later run once there is someone.

`slashes_release()` then pays each booked slash's OPEN out of the Datanet's pool in the stakes contract to the
treasury that funds the epochs (`rewards.services.slash_releases_send`), so the epoch paying those earnings is
funded by the slashed OPEN: once per slash, safe after a lost answer.
"""

import logging

from datanets.selectors import latest_version_rows_by_contributor
from rewards import services as rewards_services
from rewards.chainio import get_chain_client
from rewards.selectors import slash_bookings

from ..chainio import deployment_recorded, staking_contract
from ..models import SlashState, StakeSlash

logger = logging.getLogger("governance")


def slash_honest_weights(*, slash: StakeSlash) -> tuple[int | None, dict[int, int]]:
    """(the version number, {user id: accepted rows}) that weigh this slash's payout: the Datanet's latest
    version's contributors other than the slashed one."""
    version, rows = latest_version_rows_by_contributor(datanet=slash.datanet)
    if version is None:
        return None, {}
    return version.number, {user_id: count for user_id, count in rows.items()
                            if user_id != slash.user_id and count > 0}


def slashes_book() -> list:
    """Book every done slash not booked yet as its Datanet's honest contributors' earnings; returns the new
    bookings. Safe to run again or side by side: each slash is booked once (`rewards.services.slash_book`)."""
    done = [slash for slash in StakeSlash.objects.filter(state=SlashState.DONE).select_related("datanet")
            if int(slash.amount) > 0]
    booked = slash_bookings(keys=[slash.evidence_hash for slash in done])
    bookings = []
    for slash in done:
        if slash.evidence_hash in booked:
            continue
        version, weights = slash_honest_weights(slash=slash)
        if not weights:
            logger.info("slash %s on datanet %s waits: no other contributor has accepted rows in a version",
                        slash.pk, slash.datanet_id)
            continue
        bookings.append(rewards_services.slash_book(
            key=slash.evidence_hash, datanet_id=slash.datanet_id, datanet_version=version,
            slashed_user_id=slash.user_id, amount=int(slash.amount), weights=weights, slash_tx_hash=slash.tx_hash))
    return bookings


def bookings_on(*, deployment) -> list:
    """The bookings of slashes made on this deployment's stakes contract (a restarted development chain's old
    slashes are not in its pools)."""
    keys = StakeSlash.objects.filter(deployment=deployment, state=SlashState.DONE).values_list("evidence_hash",
                                                                                               flat=True)
    return sorted(slash_bookings(keys=keys).values(), key=lambda booking: booking.pk)


def slashes_release(*, client=None) -> list:
    """Release every booked slash of this chain's stakes contract from its Datanet's pool to the treasury, once;
    returns the releases touched. Nothing recorded for this chain, or no stakes contract: nothing to do."""
    client = client or get_chain_client()
    deployment = deployment_recorded(client=client)
    staking = staking_contract(deployment, client) if deployment is not None else None
    if staking is None:
        return []
    return rewards_services.slash_releases_send(staking=staking, bookings=bookings_on(deployment=deployment),
                                                from_block=deployment.staking_deployed_at_block)
