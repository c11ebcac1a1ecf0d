"""`rewards.models` is a package of modules by domain, and `lineage/settings.py` an entry that takes its settings
from the topical modules of `lineage/settings_parts/`. Callers keep what they had: `from rewards.models import X`
names every model and enumeration it named before the split, Django still finds all of them under the `rewards`
label, `DJANGO_SETTINGS_MODULE` is still `lineage.settings`, and running that file (as runpy does) still yields
every setting. Each module stays short and says what it holds."""

import ast
import importlib
import inspect
import pkgutil
import runpy
import sys
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import models

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = ROOT / "lineage" / "settings.py"
PARTS_PACKAGE = "lineage.settings_parts"

REWARDS_MODELS_BEFORE_THE_SPLIT = {
    "AccountKind", "AppendOnly", "ChainClaim", "ChainCursor", "ChainDeployment", "ChainDeposit", "ClaimRelay",
    "CreditGrant", "EPOCH_ORDER", "EarningsHold", "Epoch", "EpochState", "Fallback", "FeePolicy", "FeePolicyVersion",
    "HoldState", "LedgerAccount", "LedgerEntry", "LedgerTransaction", "PayoutAllocation", "PayoutLeaf", "PendingFee",
    "PromotionalCredit", "ReconciliationIssue", "RelayState", "ReleaseState", "Settlement", "SettlementShare",
    "ShareRole", "SlashBooking", "SlashRelease", "SlashShare", "USER", "USER_KINDS", "Wallet", "WalletNonce",
}


def _lines(path) -> int:
    return len(Path(path).read_text(encoding="utf-8").splitlines())


def test_rewards_models_re_exports_every_name_and_django_finds_every_model():
    package = importlib.import_module("rewards.models")
    assert set(package.__all__) == REWARDS_MODELS_BEFORE_THE_SPLIT
    modules = list(pkgutil.iter_modules(package.__path__, "rewards.models."))
    assert len(modules) >= 5, "split by domain"
    for info in modules:
        module = importlib.import_module(info.name)
        assert (module.__doc__ or "").strip(), f"{info.name} says what it holds"
        assert _lines(module.__file__) < 400, f"{info.name} is short"
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == info.name and not name.startswith("_"):
                assert getattr(package, name, None) is value, f"{info.name}.{name} is not re-exported"
    registered = set(apps.get_app_config("rewards").get_models())
    exported = {value for name in package.__all__ if inspect.isclass(value := getattr(package, name))
                and issubclass(value, models.Model) and not value._meta.abstract}
    assert registered == exported and len(registered) == 25


def _parts_the_entry_imports() -> list[str]:
    tree = ast.parse(SETTINGS_FILE.read_text(encoding="utf-8"))
    return [node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
            and node.module.startswith(f"{PARTS_PACKAGE}.") and [a.name for a in node.names] == ["*"]]


def _settings_assigned_in(path: Path) -> set[str]:
    """Upper-case names a module assigns at its top level (inside `if`/`try` too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()}
    return names


def test_the_settings_entry_imports_every_part_and_each_setting_is_set_in_one_place():
    package = importlib.import_module(PARTS_PACKAGE)
    parts = sorted(info.name for info in pkgutil.iter_modules(package.__path__, f"{PARTS_PACKAGE}."))
    imported = _parts_the_entry_imports()
    assert len(imported) == len(set(imported)) and sorted(imported) == parts, "every part, once"
    assert _lines(SETTINGS_FILE) < 250
    owners: dict[str, list[str]] = {}
    for name in ["lineage.settings", *parts]:
        path = SETTINGS_FILE if name == "lineage.settings" else Path(importlib.import_module(name).__file__)
        if name != "lineage.settings":
            assert (importlib.import_module(name).__doc__ or "").strip(), f"{name} says what it holds"
            assert _lines(path) < 250, f"{name} is short"
        for setting in _settings_assigned_in(path):
            owners.setdefault(setting, []).append(name)
    twice = {setting: where for setting, where in owners.items() if len(where) > 1}
    assert not twice, f"set in more than one place (the later import would win silently): {twice}"
    for setting in owners:
        assert hasattr(settings, setting), f"{setting} does not reach django.conf.settings"


def test_running_the_settings_file_yields_every_setting_of_every_part(monkeypatch, tmp_path):
    monkeypatch.setenv("LINEAGE_VAR_DIR", str(tmp_path / "var"))  # the settings make their directories there
    monkeypatch.setenv("SECRET_KEY", "a key for this run only")
    namespace = runpy.run_path(str(SETTINGS_FILE))
    assert namespace["SECRET_KEY"] == "a key for this run only"
    assert namespace["VAR_DIR"] == tmp_path / "var" and namespace["BASE_DIR"] == ROOT
    for name in _parts_the_entry_imports():
        part = sys.modules[name]  # imported afresh by this run, not left over from Django's own import
        assert getattr(part, "VAR_DIR", tmp_path / "var") == tmp_path / "var", name
        for setting, value in vars(part).items():
            if setting.isupper():
                assert namespace[setting] is value, f"{name}.{setting}"
    assert list(namespace["CELERY_BEAT_SCHEDULE"]) == [
        "rewards-epoch-close", "rewards-index-deposits", "rewards-index-claims", "rewards-reconcile",
        "rewards-settle-fees", "governance-index", "insights-summaries-refresh"]
