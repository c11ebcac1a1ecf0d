from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "retrieval"
    verbose_name = "Retrieval"

    def ready(self):
        from datanets.signals import version_published

        version_published.connect(_queue_index_build, dispatch_uid="retrieval.queue_index_build")


def _queue_index_build(sender, version, **kwargs):
    """A published version of a Documents Datanet gets its retrieval index built on the gpu queue (the row
    is written in the publishing transaction; the build is queued when it commits)."""
    from datanets.types import TaskType

    if version.datanet.task_type == TaskType.DOCUMENTS:
        from .services import index_build_queue

        index_build_queue(version=version)
