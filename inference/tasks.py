from celery import shared_task

from . import services


@shared_task(acks_late=True)
def inference_settle_task(inference_id: str, input_text: str, output: str) -> str:
    """Receipt and fee of an answer already given (`INFERENCE_RECEIPTS_ASYNC`). Idempotent."""
    record = services.inference_settle_queued(inference_id=inference_id, input_text=input_text, output=output)
    return str(record.pk)
