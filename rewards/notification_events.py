"""What notifications sends when an earnings epoch closes (see notifications/builders.py)."""

from django.urls import reverse

from notifications import catalogue
from notifications.builders import BuiltEvent, Email, absolute_url, stamp


def epoch_closed(epoch_id) -> BuiltEvent | None:
    from django.contrib.auth import get_user_model

    from rewards import selectors as rewards_selectors
    from rewards.amounts import format_open
    from rewards.types import EpochState

    epoch = rewards_selectors.epoch_by_id(pk=epoch_id)
    if epoch is None or epoch.state != EpochState.CLOSED:
        return None
    allocations = rewards_selectors.epoch_allocations(epoch=epoch)
    users = {pk: (email, display or username) for pk, email, display, username in get_user_model().objects.filter(
        pk__in=[user_id for user_id, _, _ in allocations]).values_list("pk", "email", "display_name", "username")}
    claim_url = absolute_url(reverse("rewards:claim"))
    data = {"epoch": {"number": epoch.number, "root": epoch.root, "increase": str(int(epoch.increase)),
                      "total_cumulative": str(int(epoch.total_cumulative)), "accounts": len(allocations),
                      "closed_at": stamp(epoch.closed_at)}}
    per_user, emails = {}, []
    for user_id, amount, address in allocations:
        amount_open = format_open(amount)
        per_user[user_id] = {"allocation": {"amount": str(int(amount)), "amount_open": amount_open, "address": address,
                                            "claim_url": claim_url}}
        email, name = users.get(user_id, ("", ""))
        emails.append(Email(user_id, "earnings_claimable", email, f"{amount_open} OPEN from epoch {epoch.number} can be claimed",
                            f"Hello {name},\n\nEpoch {epoch.number} has closed and published {amount_open} OPEN of your "
                            f"earnings for your wallet {address}. Claim it (or see it relayed to you): {claim_url}\n"))
    return BuiltEvent(key=f"{catalogue.EPOCH_CLOSED}:{epoch.pk}", type=catalogue.EPOCH_CLOSED, data=data,
                      user_ids=tuple(sorted(per_user)), per_user=per_user, emails=emails)


# notify.event's kinds -> their builder (registered in AppConfig.ready)
BUILDERS = {
    "epoch.closed": epoch_closed,
}
