"""A queued answer carries its receipt id at once and the attribution worker stores the receipt seconds later:
the server answers 202 `receipt_pending` meanwhile, and the SDK waits for the receipt or says it is still being
computed (never mistakes the pending answer for a receipt)."""

import uuid

import pytest
from lineage_client.errors import NotFoundError, WaitTimeoutError

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_pending_receipt_is_waited_for_and_then_reported_as_still_computing(lineage_for, alice):
    from inference.models import InferenceRecord, InferenceStatus

    reserved = uuid.uuid4().hex
    InferenceRecord.objects.create(user=alice, endpoint="chat.completions", model_slug="m", receipt_id=reserved,
                                   status=InferenceStatus.SUCCEEDED)
    lineage = lineage_for(alice, "read")
    with pytest.raises(WaitTimeoutError, match="still being computed"):
        lineage.receipts.get(reserved, wait_s=2.5)
    with pytest.raises(NotFoundError):
        lineage.receipts.get(uuid.uuid4().hex, wait_s=0)
