from django.apps import AppConfig


class DatanetsConfig(AppConfig):
    name = "datanets"
    verbose_name = "Datanets"

    def ready(self):
        from notifications import builders, datanet_access

        from . import notification_events

        # notifications sits below datanets and must not import it: what it needs is registered here.
        for kind, builder in notification_events.BUILDERS.items():
            builders.register_builder(kind, builder)
        datanet_access.register(datanets_managed_by=_datanets_managed_by, datanet_permissions=_datanet_permissions)


# Looked up when called, so the selector is the one in force (as a direct import inside a function was).
def _datanets_managed_by(*, user):
    from . import selectors

    return selectors.datanets_owned_by(user=user)


def _datanet_permissions(*, datanet, user):
    from . import selectors

    return selectors.datanet_permissions(datanet=datanet, user=user)
