"""The index build's harm holds (attribution/services/builds.py): rows flagged one by one, and accounts whose rows
together are worth significantly less than half a typical row each (credit.low_value_contributors), each open a
hold with a reason the contributor can read."""

from attribution.services.builds import _hold_for_harm
from rewards.models import EarningsHold, HoldState

MODEL = "c" * 64


def test_a_low_value_account_is_held_with_its_worst_rows_as_evidence(db, alice, bob):
    credit = {"harm_threshold": 0.7, "harm_by_contributor": {
        str(alice.pk): {"rows": ["r9", "r3", "r1"], "harm": 1.5, "kind": "low_value", "efficiency": -0.07},
        str(bob.pk): {"rows": ["r7"], "harm": 2.0, "kind": "flagged"},
        "imported-dataset": {"rows": ["r8"], "harm": 1.0, "kind": "flagged"},  # not a user: nothing to hold
    }}
    _hold_for_harm(model_version_hash=MODEL, credit=credit)
    _hold_for_harm(model_version_hash=MODEL, credit=credit)  # a rebuild: the same holds, not new ones
    holds = {h.user_id: h for h in EarningsHold.objects.all()}
    assert set(holds) == {alice.pk, bob.pk}
    assert all(h.state == HoldState.HELD and h.model_version_hash == MODEL for h in holds.values())
    assert "taken together, are worth -7% of as many typical rows" in holds[alice.pk].reason
    assert "a curator will review" in holds[alice.pk].reason.lower()
    assert holds[alice.pk].evidence["rows"] == ["r1", "r3", "r9"] and holds[alice.pk].evidence["threshold"] == 0.5
    assert "likely mislabeled" in holds[bob.pk].reason and holds[bob.pk].evidence["threshold"] == 0.7
