"""Pruning the model root from the platform's side (`manage.py inference_prune_model_root`).

The model servers prune their own root after each load (`inference.engine.pruning`); this is the same
rule run by an operator, with more known about what is in use: besides the servers' leases, every
model version deployed now (the poller would publish it again at once) and every adapter a configured
server (`INFERENCE_SERVER_URLS`) reports holding on `/v1/health` is kept. A server that does not answer
is reported; what it held stays protected by its lease when it shares this root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction

from accounts.services import AuditAction, audit_record
from models_registry import selectors as registry_selectors

from .client import ModelServerError, ServerConnection, configured_token, split_urls


@dataclass
class PruneReport:
    plan: object  # inference.engine.pruning.PrunePlan
    deployed: set[str] = field(default_factory=set)
    loaded: dict[str, set[str]] = field(default_factory=dict)  # server URL -> adapter versions it holds
    down: dict[str, str] = field(default_factory=dict)  # server URL -> why it did not answer


def servers_holding(urls) -> tuple[dict[str, set[str]], dict[str, str]]:
    """The adapter versions each model server reports on `/v1/health`, and the servers that did not answer."""
    loaded, down = {}, {}
    for url in split_urls(urls):
        connection = ServerConnection(url, token=configured_token(), timeout=5.0, connect_timeout=2.0)
        try:
            status = connection.status(timeout=5.0)
        except ModelServerError as exc:
            down[url] = exc.message
            continue
        finally:
            connection.close()
        loaded[url] = {str(meta.get("version")) for meta in (status.get("adapters") or {}).values()
                       if meta.get("version")}
    return loaded, down


def model_root_prune(*, root: str | Path | None = None, max_bytes: int | None = None, dry_run: bool = False,
                     min_age_s: float | None = None, server_urls=None, actor=None) -> PruneReport:
    """Prune `root` (default `INFERENCE_MODEL_ROOT`) to `max_bytes` (default
    `INFERENCE_MODEL_ROOT_MAX_BYTES`; 0: no bound). Removals are audited (`inference.model_root_pruned`)."""
    from .engine.model_store import ModelStore
    from .engine.pruning import MIN_AGE_S

    root = Path(settings.INFERENCE_MODEL_ROOT if root is None else root)
    max_bytes = settings.INFERENCE_MODEL_ROOT_MAX_BYTES if max_bytes is None else max_bytes
    if max_bytes < 0:
        raise ValueError(f"the bound must be a number of bytes >= 0 (0: no bound), not {max_bytes}")
    if not root.is_dir():
        raise ValueError(f"the model root {root} does not exist on this machine: run this where the root is mounted"
                         " (the deployment poller's machine), or name it with --root")
    deployed = set(registry_selectors.deployed_model_versions().values_list("version_hash", flat=True))
    loaded, down = servers_holding(settings.INFERENCE_SERVER_URL if server_urls is None else server_urls)
    in_use = deployed.union(*loaded.values())
    store = ModelStore(root, max_bytes=max_bytes, min_age_s=MIN_AGE_S if min_age_s is None else min_age_s)
    plan = store.prune(in_use=in_use, dry_run=dry_run)
    if plan.removed:
        with transaction.atomic():
            # The root is a path (often longer than an object id may be): it goes in the details.
            audit_record(actor=actor, action=AuditAction.INFERENCE_MODEL_ROOT_PRUNED, object_type="model_root",
                         details={"root": str(store.root), "max_bytes": plan.max_bytes, "total_bytes": plan.total_bytes,
                             "removed": [{"version": e.version, "bytes": e.bytes} for e in plan.removed]})
    return PruneReport(plan=plan, deployed=deployed, loaded=loaded, down=down)
