"""`datanets.selectors` and `rewards.selectors` are packages of modules named for what they read, and the serving
engine's `inference/engine/engine.py` is split into the engine and the modules it builds on. Callers keep
importing what they imported before (`from datanets import selectors; selectors.review_queue(...)`,
`from rewards.selectors import claims_for`, `from inference.engine.engine import ServingEngine`): every public
read of a module is re-exported by its package, the names callers used before the split still are, and the
engine still runs in a process without Django."""

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PUBLIC_BEFORE_THE_SPLIT = {
    "datanets.selectors": {
        "DOCUMENTS_LISTED", "DatanetPermissions", "ROW_ERROR_COLUMNS", "contribution_by_id",
        "contribution_daily_totals", "contribution_error_table", "contribution_get_for", "contributions_for_user",
        "contributions_overview_for", "contributor_activity", "contributor_first_contributions",
        "contributor_profile", "datanet_accepted_rows", "datanet_get_visible", "datanet_ids_visible_among",
        "datanet_ids_visible_to", "datanet_permissions", "datanet_recent_contributions", "datanet_role",
        "datanet_search", "datanet_stats", "datanets_by_id", "datanets_owned_by", "datanets_visible_to",
        "documents_in", "existing_rows_described_to", "latest_version_rows_by_contributor", "leaderboard",
        "record_copy_links", "records_by_id", "records_by_uid", "review_daily_totals", "review_progress",
        "review_queue", "review_record_get", "rows_for_viewer", "rows_rejected_by_curators_for",
        "rows_rejected_recently_count", "trainable_versions_for", "training_access_request_by_id",
        "training_access_requests_for", "version_by_id", "version_get", "version_record_pairs",
        "version_rows_among", "version_training_rows", "versions_by_id", "versions_for", "versions_hidden_from",
        "versions_shared_row_counts", "versions_visible_to", "with_accepted_rows",
    },
    "rewards.selectors": {
        "PAGE_SIZE", "POSTED", "admin_overview", "claim_relays_for", "claims_daily_totals", "claims_for",
        "contributor_earnings_daily", "credit_balance", "deposit_overview", "deposit_page_url", "earning_items",
        "earning_shares", "earnings_chart", "earnings_for", "earnings_holds_held", "earnings_holds_open",
        "earnings_page", "epoch_allocations", "epoch_by_id", "epochs_overview", "fee_for", "fee_policy_public",
        "model_names_by_hash", "nothing_to_claim", "receipts_page", "settlement_daily_totals", "slash_bookings",
        "wallet_addresses_of", "wallet_owner", "wallet_state", "with_model_names",
    },
}

ENGINE_NAMES = {"ClassificationResult", "EngineConfig", "GenerationResult", "GenerationStream", "ServingEngine", "Task"}
ENGINE_MODULES = ("engine", "engine_types", "engine_requests", "batching")


@pytest.mark.parametrize("package_name", sorted(PUBLIC_BEFORE_THE_SPLIT))
def test_the_selectors_package_re_exports_every_public_read_of_its_modules(package_name):
    package = importlib.import_module(package_name)
    assert set(package.__all__) >= PUBLIC_BEFORE_THE_SPLIT[package_name]  # every name from before the split, and new reads
    assert all(hasattr(package, name) for name in package.__all__)
    modules = list(pkgutil.iter_modules(package.__path__, f"{package_name}."))
    assert len(modules) >= 4, "split into modules by what they read"
    for info in modules:
        module = importlib.import_module(info.name)
        assert (module.__doc__ or "").strip(), f"{info.name} says what it holds"
        assert len(Path(module.__file__).read_text(encoding="utf-8").splitlines()) < 400, f"{info.name} is short"
        for name, value in vars(module).items():
            defined_here = (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == info.name
            if defined_here and not name.startswith("_"):
                assert getattr(package, name, None) is value, f"{info.name}.{name} is not re-exported"


def test_the_engine_module_and_package_still_expose_the_engine():
    engine_module = importlib.import_module("inference.engine.engine")
    package = importlib.import_module("inference.engine")
    assert set(engine_module.__all__) == ENGINE_NAMES
    for name in ENGINE_NAMES:
        assert getattr(engine_module, name) is getattr(package, name), name
    for module_name in ENGINE_MODULES:
        module = importlib.import_module(f"inference.engine.{module_name}")
        assert (module.__doc__ or "").strip(), f"{module_name} says what it holds"
        assert len(Path(module.__file__).read_text(encoding="utf-8").splitlines()) < 400, f"{module_name} is short"


def test_the_engine_imports_without_django():
    """Engines must not import Django: a fresh interpreter loads the engine and finds no `django` module."""
    probe = ("import sys\nfrom inference.engine.engine import ServingEngine\nimport inference.engine\n"
             "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
