"""Every Celery queue the settings declare has a consumer wherever the platform is started: a queue nobody
consumes holds its tasks forever (queued receipts would never be computed and their fees never split)."""

import re
from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def _queues_of(command: str) -> set[str]:
    found = re.search(r"-Q\s+([\w,]+)", command)
    return set(found.group(1).split(",")) if found else set()


def _declared() -> set[str]:
    return {queue.name for queue in settings.CELERY_TASK_QUEUES}


def test_every_routed_queue_is_declared():
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed <= _declared() and "attribution" in routed


def test_procfiles_consume_every_queue():
    for name in ("Procfile", "Procfile.dev"):
        consumed = set()
        for line in (ROOT / name).read_text().splitlines():
            if "celery" in line and " worker" in line:
                consumed |= _queues_of(line)
        assert consumed == _declared(), (name, consumed)


def test_compose_consumes_every_queue_without_optional_profiles_except_the_gpu():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    consumed, always = set(), set()
    for service in services.values():
        command = " ".join(service.get("command") or []) if isinstance(service.get("command"), list) else ""
        if "celery" in command and " worker" in command:
            consumed |= _queues_of(command)
            if not service.get("profiles"):
                always |= _queues_of(command)
    assert consumed == _declared()
    # Without the "gpu" profile everything but training and index builds still runs, receipts included.
    assert always == _declared() - {"gpu"}
