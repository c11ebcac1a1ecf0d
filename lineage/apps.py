from django.apps import AppConfig


class LineageConfig(AppConfig):
    """The project package as an app, so that its system checks (`lineage/checks.py`) are registered and the
    platform-wide Celery task metrics (`lineage/observability.py`) are recorded in every process."""

    name = "lineage"
    verbose_name = "Lineage"

    def ready(self):
        from . import checks, observability  # noqa: F401 (importing checks registers them)

        observability.connect_task_signals()
