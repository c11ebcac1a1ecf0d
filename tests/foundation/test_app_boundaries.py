"""Apps talk to each other through services (writes) and selectors (reads), never through another app's models.

Every Python module of every app of ours (the packages in INSTALLED_APPS that live in this repository, the
`lineage` project package and its demo included) is parsed with `ast`, and any way of reaching another app's
`models` module fails the test, naming the file and line: `import datanets.models`,
`from datanets.models import Record`, `from datanets import models`, and the two string dodges,
`importlib.import_module("datanets.models")` and `apps.get_model("datanets", "Record")`. An enumeration that
belongs to an app's public vocabulary (`TaskType`, `RecordStatus`, `JobState`, `EpochState`...) is imported from
that app's `types.py`; a ForeignKey's string reference ("datanets.DatanetVersion") is not an import.

The exceptions, and why each exists:

- `accounts.models` may be imported everywhere: accounts is the foundation every app is built on (the user
  model, `ApiKey`, `AuditAction`), not a peer whose internals could drift under its callers.
- `<app>/migrations/` are left alone: Django writes them, they freeze the references a model had when they were
  made (`attribution.models.new_receipt_id` as a field's default, another app's model in `RunPython`), and
  editing history to satisfy a layering rule would change nothing that runs today.
- No `admin.py` is exempt: each app's admin registers only its own models, so none needs another app's.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps as django_apps

ROOT = Path(__file__).resolve().parents[2]
FOUNDATION = "accounts"  # its models are everyone's: see the module docstring


@dataclass(frozen=True)
class Crossing:
    path: str
    line: int
    reaches: str

    def __str__(self):
        owner = self.reaches.split(".")[0]
        return (f"{self.path}:{self.line}: reaches {self.reaches}; read through {owner}.selectors, write through "
                f"{owner}.services, take its enumerations from {owner}.types")


def our_packages() -> set[str]:
    """Top-level packages of the installed apps that live in this repository (not in the virtualenv)."""
    packages = set()
    for config in django_apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(ROOT) and ".venv" not in path.parts:
            packages.add(config.name.split(".")[0])
    return packages


def _models_of(module: str, packages: set[str]) -> str | None:
    """The app whose models `module` is (`datanets.models`, `datanets.models.anything`), or None."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] in packages and parts[1] == "models":
        return parts[0]
    return None


def _string_argument(call: ast.Call, position: int) -> str | None:
    if len(call.args) > position and isinstance(call.args[position], ast.Constant) and isinstance(
            call.args[position].value, str):
        return call.args[position].value
    return None


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def reached_models(tree: ast.AST, packages: set[str]) -> list[tuple[int, str]]:
    """(line, "<app>.models") for every place the parsed module reaches an app's models module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"{app}.models") for alias in node.names
                      if (app := _models_of(alias.name, packages))]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if app := _models_of(node.module, packages):
                found.append((node.lineno, f"{app}.models"))
            elif node.module in packages and any(alias.name == "models" for alias in node.names):
                found.append((node.lineno, f"{node.module}.models"))
        elif isinstance(node, ast.Call):
            name = _called_name(node)
            if name == "import_module" and (module := _string_argument(node, 0)):
                if app := _models_of(module, packages):
                    found.append((node.lineno, f"{app}.models"))
            elif name == "get_model" and (label := _string_argument(node, 0)):
                app = label.split(".")[0]
                if app in packages:
                    found.append((node.lineno, f"{app}.models"))
    return sorted(found)


def crossings(packages: set[str]) -> list[Crossing]:
    out = []
    for package in sorted(packages):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or "__pycache__" in relative.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            out += [Crossing(str(relative), line, reaches) for line, reaches in reached_models(tree, packages)
                    if not reaches.startswith((f"{package}.", f"{FOUNDATION}."))]
    return out


def test_no_app_reaches_another_apps_models():
    packages = our_packages()
    # Every domain app is scanned (a settings change that hid them would make this test pass vacuously).
    assert {"accounts", "datanets", "models_registry", "attribution", "retrieval", "inference", "rewards",
            "insights", "governance", "notifications", "lineage"} <= packages
    found = crossings(packages)
    assert not found, "Apps reach other apps' models:\n" + "\n".join(map(str, found))


PACKAGES = {"accounts", "datanets", "retrieval"}

CAUGHT = {
    "import datanets.models": "datanets.models",
    "import datanets.models as dm": "datanets.models",
    "from datanets.models import Record": "datanets.models",
    "from datanets.models.rows import Record": "datanets.models",
    "from datanets import models": "datanets.models",
    "from datanets import selectors, models as dm": "datanets.models",
    "def f():\n    from datanets.models import TaskType\n    return TaskType": "datanets.models",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from datanets.models import Record": "datanets.models",
    "import importlib\nimportlib.import_module('datanets.models')": "datanets.models",
    "from django.apps import apps\napps.get_model('datanets', 'Record')": "datanets.models",
    "from django.apps import apps\napps.get_model('datanets.Record')": "datanets.models",
}

LET_THROUGH = [
    "from datanets import selectors",
    "from datanets.types import RecordStatus, TaskType",
    "from datanets.selectors import datanet_permissions",
    "from .models import RetrievalIndex",
    "from ..models import RetrievalIndex",
    "from django.db import models\nversion = models.ForeignKey('datanets.DatanetVersion', on_delete=models.PROTECT)",
    "import numpy.models",  # a package that is not one of ours
    "from elsewhere.datanets.models import X",
]


def test_the_scanner_catches_every_way_of_reaching_models():
    for source, reaches in CAUGHT.items():
        assert [r for _, r in reached_models(ast.parse(source), PACKAGES)] == [reaches], source
    for source in LET_THROUGH:
        assert reached_models(ast.parse(source), PACKAGES) == [], source


def test_a_crossing_names_its_file_and_line():
    crossing = Crossing("retrieval/forms.py", 7, "datanets.models")
    assert str(crossing).startswith("retrieval/forms.py:7: reaches datanets.models; read through datanets.selectors")
