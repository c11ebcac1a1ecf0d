from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "OpenLoRA serving"

    def ready(self):
        from lineage import hooks
        from lineage.observability import register_scrape_collector

        from .metrics import ModelServerCollector

        # The model server's gauges, read from its /v1/stats when /metrics is scraped.
        register_scrape_collector("inference.model_server", ModelServerCollector)
        # attribution's receipt page and API answer 202 for a receipt still being computed
        hooks.receipt_awaited.register("inference", _receipt_awaited)


def _receipt_awaited(*, receipt_id: str):
    from . import selectors  # looked up when called, as the direct import it replaces was

    return selectors.receipt_awaited(receipt_id=receipt_id)
