from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "OpenLoRA serving"

    def ready(self):
        from lineage.observability import register_scrape_collector

        from .metrics import ModelServerCollector

        # The model server's gauges, read from its /v1/stats when /metrics is scraped.
        register_scrape_collector("inference.model_server", ModelServerCollector)
