"""`lineage/observability.py`: the one home of `/metrics` and the platform-wide metrics. Apps add their own
scrape-time collectors from `ready` and are not imported by it (no app imports another to be scraped).
Who may read `/metrics` is tested in test_chain_and_secrets.py; the multi-worker sums in
tests/inference/test_metrics_multiprocess.py."""

import ast
from pathlib import Path

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from lineage import observability

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "attribution", "datanets", "governance", "inference", "insights", "models_registry",
        "notifications", "retrieval", "rewards")


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module)
    return modules


def _families(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


class _QueueGauge:
    def collect(self):
        gauge = GaugeMetricFamily("lineage_test_backlog", "A collector an app registered.")
        gauge.add_metric([], 7)
        yield gauge


def test_observability_imports_no_app_and_no_app_reaches_into_another_for_metrics():
    imported = _imported_modules(ROOT / "lineage" / "observability.py")
    assert not {m for m in imported if m.split(".")[0] in APPS}, imported
    # The cycle this module replaced: inference's views imported insights' collectors for /metrics.
    assert not (ROOT / "insights" / "metrics.py").exists()
    for path in (ROOT / "inference").rglob("*.py"):
        assert "insights" not in {m.split(".")[0] for m in _imported_modules(path)}, path


def test_app_collectors_are_registered_from_ready_once_each():
    names = [name for name, _ in observability._app_collectors]
    assert names.count("inference.model_server") == 1
    from django.apps import apps

    from inference.apps import InferenceConfig

    InferenceConfig.ready(apps.get_app_config("inference"))  # ready run again (tests, reloads): no duplicate
    assert [name for name, _ in observability._app_collectors].count("inference.model_server") == 1


@pytest.mark.django_db
def test_metrics_exposes_platform_and_app_collectors_on_a_per_scrape_registry(client, settings, tmp_path,
                                                                               monkeypatch):
    # Multiprocess mode (a fresh registry per scrape, summed from files): the app collectors and the
    # broker's are added to each scrape's registry, once, in registration order.
    monkeypatch.setattr(observability, "MULTIPROCESS_DIR", str(tmp_path))
    monkeypatch.setattr(observability, "_app_collectors", list(observability._app_collectors))
    observability.register_scrape_collector("tests.backlog", _QueueGauge)
    observability.register_scrape_collector("tests.backlog", _QueueGauge)  # the same name twice: kept once
    settings.DEBUG, settings.METRICS_TOKEN = False, "scrape-token"

    for _ in range(2):
        response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
        assert response.status_code == 200
        text = response.content.decode()
        families = _families(text)
        assert [s.value for s in families["lineage_test_backlog"]] == [7.0]
        assert [s.value for s in families["lineage_model_server_up"]] == [0.0]  # nothing listens in tests
        assert [s.value for s in families["lineage_broker_up"]] == [1.0]
        order = [name for name in families if name in ("lineage_model_server_up", "lineage_test_backlog",
                                                       "lineage_broker_up")]
        assert order == ["lineage_model_server_up", "lineage_test_backlog", "lineage_broker_up"]


@pytest.mark.django_db
def test_request_middleware_labels_by_route_pattern_not_raw_path(client, settings):
    settings.DEBUG, settings.METRICS_TOKEN = False, "scrape-token"
    client.get("/datanets/no-such-datanet-xyz/")
    client.get("/no/such/page/at/all/")
    text = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).content.decode()
    assert "no-such-datanet-xyz" not in text  # the slug is never a label value
    assert 'lineage_http_requests_total{method="GET",route="/datanets/<slug:slug>/",status="404"}' in text
    assert 'lineage_http_requests_total{method="GET",route="<unmatched>",status="404"}' in text
