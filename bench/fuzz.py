"""API fuzzing benchmark: thousands of schemathesis cases against every documented operation.

The same fuzzer as `tests/hardening/test_api_fuzz.py` (see `tests/hardening/hardening_support.py`), with
many more cases: the OpenAPI schema is read from `/api/schema/` through Django's WSGI app (no network),
a world of users, Datanets, versions, contributions and API keys of every scope is made through the
services in a throwaway SQLite database, and every operation is fuzzed as anonymous, as the owner's
keys with one scope each (`read`, `contribute`, `train`, `infer`) and with all, and as a stranger's key.
Each case is checked for: no 5xx, status/content type/headers/body conforming to the schema,
schema-violating input rejected with a 4xx, and every error in the documented `{code, detail, fields}`
shape (OpenAI's shape under `/v1/`).

Usage: `python bench/fuzz.py [--quick] [--examples N] [--seed S] [--json]`. `--quick` is 25 cases per
operation; the default 120 (about 4,500 cases). `--seed 0` (the default) derandomises: the same cases every
run; any other seed explores different ones. Prints figures; exits 1 when any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup_django(workdir: Path) -> None:
    os.environ["LINEAGE_VAR_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'fuzz.sqlite3'}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "hardening")]  # tests/: cast_support
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False  # as served: DEBUG's technical 404/500 pages are HTML, the real handlers answer JSON
    settings.MEDIA_ROOT = workdir / "media"
    settings.DATANETS_CACHE_DIR = workdir / "cache"
    import logging

    logging.disable(logging.WARNING)  # 4xx are expected by the thousand; errors (5xx) still print
    call_command("migrate", verbosity=0, interactive=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="25 cases per operation")
    parser.add_argument("--examples", type=int, default=None, help="cases per operation (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="0: derandomised (the default); other: that seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    examples = args.examples or (25 if args.quick else 120)

    with tempfile.TemporaryDirectory(prefix="lineage-fuzz-") as tmp:
        setup_django(Path(tmp))
        from django.test import TestCase
        from hardening_support import FuzzReport, build_world, fuzz_operation, load_schema

        world = build_world(run_on_commit=TestCase.captureOnCommitCallbacks)
        schema = load_schema()
        operations = [result.ok() for result in schema.get_all_operations()]
        report = FuzzReport()
        started = time.perf_counter()
        for operation in operations:
            before_cases, before_failures = report.cases, len(report.failures)
            fuzz_operation(operation, world, report, max_examples=examples, seed=args.seed)
            log(f"{operation.method.upper():6} {operation.path:70} {report.cases - before_cases:5} cases "
                f"{len(report.failures) - before_failures:3} failures")
        wall = time.perf_counter() - started

    figures = report.as_dict()
    figures.update({"examples_per_operation": examples, "seed": args.seed, "wall_s": round(wall, 1),
                    "python": platform.python_version(), "machine": platform.machine()})
    print(f"operations: {figures['operations']}  cases: {figures['cases']}  failures: {figures['failures']}  "
          f"({figures['cases_per_s']} cases/s; timings are noisy on a shared machine)")
    print("statuses: " + ", ".join(f"{k}: {v}" for k, v in figures["by_status"].items()))
    for op, role, message in report.failures[:50]:
        print(f"FAIL {op} as {role}: {message}")
    if args.json:
        print(json.dumps(figures))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
