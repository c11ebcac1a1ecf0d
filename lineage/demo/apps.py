from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Installed so Celery discovers `lineage.demo.tasks` (the demo's chain step runs on the worker)."""

    name = "lineage.demo"
    label = "demo"
    verbose_name = "Demo story"
