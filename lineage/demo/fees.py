"""Demo credit and a few settled inferences for users by role, written through the rewards services
(`rewards.services` holds only the platform's own writes). Idempotent: the grants have fixed idempotency
keys and the fees fixed inference ids, so a second run writes nothing."""

from rewards.services import credit_grant, fee_settle

PPM = 1_000_000
OPEN = 10**18


def demo_seed(*, users_by_role: dict) -> None:
    """Idempotent demo data: 1,000 OPEN credit for each demo user and a few settled inferences."""
    for role, user in users_by_role.items():
        credit_grant(actor=None, user=user, amount=1_000 * OPEN, reason="Demo credit",
                     idempotency_key=f"demo:{role}:{user.pk}")
    owner, payer = users_by_role.get("owner"), users_by_role.get("user")
    contributors = [users_by_role[r] for r in ("contributor", "contributor2") if r in users_by_role]
    if not (owner and payer and contributors):
        return
    for n in range(5):
        weight = 600_000 if len(contributors) > 1 else PPM
        shares = {contributors[0].pk: weight}
        if len(contributors) > 1:
            shares[contributors[1].pk] = PPM - weight
        fee_settle(inference_id=f"demo-inference-{n}", payer=payer, model_owner=owner, fee=(n + 1) * OPEN // 10,
                   contributor_shares=shares, model_version_hash="demo" + "0" * 60, receipt_id=f"demo-receipt-{n}",
                   contributor_rows={c.pk: [f"demo-row-{n}-{i}" for i in range(3)] for c in contributors})
