from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "retrieval"
    verbose_name = "Retrieval"

    def ready(self):
        from datanets.signals import version_published
        from lineage import hooks

        version_published.connect(_queue_index_build, dispatch_uid="retrieval.queue_index_build")
        # a retrieval receipt's id opens attribution's receipt page, which redirects here
        hooks.foreign_receipt.register("retrieval", _receipt_by_id)


def _receipt_by_id(*, receipt_id: str):
    from . import selectors  # looked up when called, as the direct import it replaces was

    return selectors.receipt_by_id(receipt_id=receipt_id)


def _queue_index_build(sender, version, **kwargs):
    """A published version of a Documents Datanet gets its retrieval index built on the gpu queue (the row
    is written in the publishing transaction; the build is queued when it commits)."""
    from datanets.types import TaskType

    if version.datanet.task_type == TaskType.DOCUMENTS:
        from .services import index_build_queue

        index_build_queue(version=version)
