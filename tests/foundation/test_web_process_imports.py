"""Web processes never load torch, transformers, sentence-transformers or peft.

Every gunicorn worker imports the URLconf and through it each app's views, services and selectors.
Those name the training and attribution engines, whose re-exports resolve on first use, so a web
worker stays a plain Django process (hundreds of MB lighter, seconds faster to start) and only
Celery workers and the serving process pay for the ML libraries. A search's query is embedded on the model
server when one is configured: tests/retrieval/test_search_on_model_server.py runs one in a fresh web process."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sentence_transformers", "peft", "safetensors.torch")

PROBE = """
import importlib, sys
import django
django.setup()
from django.apps import apps
from django.urls import get_resolver
from lineage.wsgi import application  # noqa: F401 - what gunicorn loads

def walk(resolver):
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            walk(pattern)
        else:
            pattern.callback  # noqa: B018 - resolves the view
walk(get_resolver())
for config in apps.get_app_configs():
    for part in ("services", "selectors", "views", "api", "forms", "admin", "tasks"):
        try:
            importlib.import_module(f"{config.name}.{part}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.{part}":
                raise
heavy = [name for name in HEAVY_NAMES if name in sys.modules]
print("HEAVY", *heavy)
# The engines still export everything: training's package on first use, attribution's from its modules.
from models_registry.training import run_training
from attribution.engine.build_pass import build_index
from attribution.engine.query import Attributor
print("RESOLVED", run_training.__module__, Attributor.__module__, build_index.__module__, "torch" in sys.modules)
""".replace("HEAVY_NAMES", repr(HEAVY))


def test_web_process_imports_no_ml_libraries_and_engines_resolve_on_first_use():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=180,
                            env={"DJANGO_SETTINGS_MODULE": "lineage.settings", "PATH": "/usr/bin:/bin",
                                 "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in result.stdout.splitlines())
    assert lines["HEAVY"] == "", f"a web process loaded {lines['HEAVY']}"
    assert lines["RESOLVED"].split() == ["models_registry.training.runner", "attribution.engine.query",
                                         "attribution.engine.build_pass", "True"]


def test_unknown_engine_name_is_an_attribute_error():
    import attribution.engine
    import models_registry.training

    for package in (attribution.engine, models_registry.training):
        try:
            package.no_such_thing  # noqa: B018
        except AttributeError as exc:
            assert "no_such_thing" in str(exc)
        else:
            raise AssertionError(f"{package.__name__} returned something for an unknown name")
    assert "run_training" in dir(models_registry.training)
