from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    verbose_name = "ModelFactory"

    def ready(self):
        from notifications import builders

        from . import notification_events

        # notifications sits below models_registry and must not import it (notifications/builders.py).
        for kind, builder in notification_events.BUILDERS.items():
            builders.register_builder(kind, builder)
