"""The one call other apps make where their state changes:

    from notifications import notify
    notify.event(kind="fine_tune.finished", object_id=job.pk)

Call it inside the transaction that makes the change: the dispatch is queued only once it commits (a
rolled-back change notifies nobody), and reads the object as committed. Kinds: `KINDS`.
"""

from django.db import transaction

KINDS = ("contribution.validated", "version.published", "fine_tune.finished", "access_request.decided", "epoch.closed")


def event(*, kind: str, object_id) -> None:
    if kind not in KINDS:
        raise ValueError(f"Unknown notification kind {kind!r}; use one of {', '.join(KINDS)}.")
    # robust: the change is already committed when this runs; a broker that cannot take the task must not
    # turn a finished fine-tune or a closed epoch into an error for its caller (it is logged instead).
    transaction.on_commit(lambda: _queue(kind, object_id), robust=True)


def _queue(kind: str, object_id) -> None:
    from .tasks import event_dispatch_task

    event_dispatch_task.delay(kind, object_id)
