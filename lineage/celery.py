"""The Celery application: one app, three queues.

`default` takes short web-side jobs (validating uploads, emails, aggregates), `gpu` takes training
and attribution index builds (run a worker with `-Q gpu` on a machine with CUDA), `chain` takes
everything that sends transactions, so nonces are handed out by one consumer at a time.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage.settings")

app = Celery("lineage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
