from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"
    verbose_name = "Insights"

    def ready(self):
        from accounts.permissions import api_key_call

        from . import counters

        api_key_call.connect(counters.on_api_key_call, dispatch_uid="insights.api_key_call")
