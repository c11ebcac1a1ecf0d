"""Thin Celery wrappers. `inference_settle_task` runs on the `attribution` queue (`lineage/celery.py`): its
worker owns the models and attribution indexes, so web workers never load them."""

from celery import shared_task

from . import services


@shared_task(name="inference.tasks.inference_settle_task", acks_late=True)
def inference_settle_task(inference_id: str, input_text: str, output: str) -> str:
    """Receipt (under the id reserved on the record) and fee of an answer already given
    (`INFERENCE_RECEIPTS_ASYNC`, the default). Idempotent: a settled record is returned as it is."""
    record = services.inference_settle_queued(inference_id=inference_id, input_text=input_text, output=output)
    return str(record.pk)
