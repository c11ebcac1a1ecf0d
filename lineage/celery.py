"""The Celery application: one app, four queues (declared and routed in `lineage/settings_parts/queues.py`).

`default` takes short web-side jobs (validating uploads, emails, aggregates), `gpu` takes training
and attribution index builds (run a worker with `-Q gpu` on a machine with CUDA), `chain` takes
everything that sends transactions, so nonces are handed out by one consumer at a time, and
`attribution` takes the receipts and fees of answers already given (`inference.tasks.inference_settle_task`):
its worker loads the models and attribution indexes once and keeps them, so web workers never import torch.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage.settings")

app = Celery("lineage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
