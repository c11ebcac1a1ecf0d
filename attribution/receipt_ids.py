"""Receipt ids: one id space for every receipt. Attribution receipts and retrieval apps' receipts are both named
by a fresh UUID4 (fees, earnings and `/attribution/receipts/<id>/` link either kind), and inference reserves one
when it answers before the receipt is written. Plain Python, so a model's field default can name it.

`attribution.models` re-exports `new_receipt_id`: migrations name it there."""

import uuid


def new_receipt_id() -> str:
    return str(uuid.uuid4())
