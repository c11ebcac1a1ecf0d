from django.apps import AppConfig


class AttributionConfig(AppConfig):
    name = "attribution"
    verbose_name = "Proof of Attribution"

    def ready(self):
        from models_registry.signals import model_version_registered

        model_version_registered.connect(_queue_index_build, dispatch_uid="attribution.queue_index_build")


def _queue_index_build(sender, version, **kwargs):
    """A newly registered model version gets its attribution index built on the gpu queue."""
    from django.conf import settings

    if settings.ATTRIBUTION_BUILD_ON_REGISTER:
        from .services import index_build_queue

        index_build_queue(model_version=version)
