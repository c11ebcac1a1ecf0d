"""DRF settings name classes in `lineage.api`; resolving them must not depend on what was imported first.

`rest_framework.views` reads DEFAULT_PARSER_CLASSES while defining APIView. When `lineage.api` imported it at
module level, a process whose first DRF settings access came from a system check (their order follows
hash randomisation) found `lineage.api` half-imported and `manage.py` failed before doing anything."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import django
django.setup()
import sys
assert "rest_framework.views" not in sys.modules, "the probe must resolve settings before DRF's views load"
from rest_framework.settings import api_settings
print(api_settings.DEFAULT_PAGINATION_CLASS.__name__, api_settings.DEFAULT_PARSER_CLASSES[0].__name__,
      api_settings.EXCEPTION_HANDLER.__name__)
"""


def test_drf_settings_resolve_in_a_fresh_process_before_drf_views_are_imported():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"DJANGO_SETTINGS_MODULE": "lineage.settings", "PATH": "/usr/bin:/bin",
                                 "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["Pagination", "JSONParser", "exception_handler"]
