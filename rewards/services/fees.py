"""Fee policy and fee splitting: the published policy (basis points for the protocol, the model owner and
the contributors, and where the contributors' part goes when nobody is credited), its versions, and how
one fee is split under a version (largest remainder, `rewards.splitting`), exactly, to the base unit.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.services import AuditAction, audit_record

from ..models import Fallback, FeePolicy, FeePolicyVersion
from ..splitting import largest_remainder

PPM = 1_000_000
BPS = 10_000


# --- Fee policy ----------------------------------------------------------------------------------------

def fee_policy_current() -> FeePolicyVersion:
    """The policy version new settlements use. Writers call this: until an admin edits the policy there is no
    saved version, and the first write saves version 1 (the one `selectors.fee_policy_in_force` reads unsaved).
    It runs inside the caller's transaction (`fee_record`, `fee_policy_set`, the governance indexer)."""
    from ..selectors.credit import fee_policy_in_force

    version = fee_policy_in_force()
    if version.pk is None:
        try:
            with transaction.atomic():
                FeePolicy.objects.get_or_create(pk=1, defaults={"protocol_bps": version.protocol_bps,
                                                                "owner_bps": version.owner_bps,
                                                                "contributors_bps": version.contributors_bps,
                                                                "fallback": version.fallback})
                version.save()
        except IntegrityError:
            version = FeePolicyVersion.objects.get(version=1)
    return version


def fee_policy_set(*, actor, protocol_bps: int, owner_bps: int, contributors_bps: int,
                   fallback: str = Fallback.TRAINING_DATA) -> FeePolicyVersion:
    values = {"protocol_bps": protocol_bps, "owner_bps": owner_bps, "contributors_bps": contributors_bps}
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= BPS:
            raise ValidationError({name: "Give a whole number of basis points between 0 and 10,000."})
    if sum(values.values()) != BPS:
        raise ValidationError(f"The shares add up to {sum(values.values())} basis points; they must add up to 10,000.")
    if fallback not in Fallback.values:
        raise ValidationError({"fallback": f"Choose one of {', '.join(Fallback.values)}."})
    current = fee_policy_current()
    # Not durable: the governance indexer applies a split set on chain inside its transaction.
    with transaction.atomic():
        version = FeePolicyVersion.objects.create(version=current.version + 1, fallback=fallback,
                                                  created_by=actor if getattr(actor, "pk", None) else None, **values)
        FeePolicy.objects.update_or_create(pk=1, defaults={**values, "fallback": fallback, "version": version.version})
        audit_record(actor=actor, action=AuditAction.REWARDS_FEE_POLICY_SET, target=version,
                     details={**values, "fallback": fallback, "version": version.version})
    return version


# --- Splitting ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeeSplit:
    protocol: int
    owner: int
    contributors: dict  # {user_id: amount}
    fallback_used: bool

    @property
    def total(self) -> int:
        return self.protocol + self.owner + sum(self.contributors.values())


def fee_split(*, fee: int, policy: FeePolicyVersion, contributor_shares: dict,
              training_shares: dict | None = None) -> FeeSplit:
    """Split one fee. With no contributor shares (the answer has no receipt) the contributors' part follows the
    policy's fallback; for `training_data`, `training_shares` ({user id: weight}: the empty-receipt split recorded
    when the model's index was built, else rows trained on; settlement.`_receiptless_weights`) divide it by largest remainder, and when those
    are unknown it goes to the protocol treasury, never to the owner."""
    parts = largest_remainder(fee, [("protocol", policy.protocol_bps), ("owner", policy.owner_bps),
                                    ("contributors", policy.contributors_bps)])
    protocol, owner, pool = parts["protocol"], parts["owner"], parts["contributors"]
    shares = {uid: ppm for uid, ppm in contributor_shares.items() if ppm > 0}
    fallback_used = False
    if not shares:
        fallback_used = pool > 0 or policy.contributors_bps > 0
        training = {uid: ppm for uid, ppm in (training_shares or {}).items() if ppm > 0}
        if policy.fallback == Fallback.TRAINING_DATA and training and pool > 0:
            shares = training
        elif policy.fallback == Fallback.OWNER:
            return FeeSplit(protocol, owner + pool, {}, fallback_used)
        else:
            return FeeSplit(protocol + pool, owner, {}, fallback_used)
    contributors = largest_remainder(pool, sorted(shares.items()))
    return FeeSplit(protocol, owner, contributors, fallback_used)


def _clean_shares(contributor_shares) -> dict[int, int]:
    shares: dict[int, int] = {}
    for key, value in (contributor_shares or {}).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError({"contributor_shares": f"Share of user {key} must be a non-negative int (ppm)."})
        shares[int(key)] = shares.get(int(key), 0) + value
    if shares and sum(shares.values()) != PPM:
        raise ValidationError({"contributor_shares": f"Shares must sum to {PPM:,} ppm, got {sum(shares.values()):,}."})
    return shares
