from django.apps import AppConfig


class LineageConfig(AppConfig):
    """The project package as an app, so that its system checks (`lineage/checks.py`) are registered."""

    name = "lineage"
    verbose_name = "Lineage"

    def ready(self):
        from . import checks  # noqa: F401 (registers the checks)
