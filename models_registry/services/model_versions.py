"""A model version after registration: its owner's settings (price, downloads, description), deploying it,
the attribution status its index build reports, and its adapter's files (on this machine, or as a zip)."""

import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import transaction

from accounts.services import AuditAction, audit_record
from lineage.model_update import model_update

from ..models import AttributionStatus, ModelVersion
from ..training.manifest import export_adapter_zip

OWNER_SETTINGS = ("price_per_inference", "allow_download", "description")  # of a model version


def model_version_local_dir(*, version: ModelVersion) -> Path:
    """The adapter directory on this machine (downloaded from object storage once per worker)."""
    try:
        return Path(default_storage.path(f"{version.storage_prefix}/adapter_config.json")).parent
    except NotImplementedError:
        target = Path(settings.TRAINING_WORK_DIR) / "models" / version.version_hash
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            _, files = default_storage.listdir(version.storage_prefix)
            target.mkdir(parents=True, exist_ok=True)
            for name in files:
                with default_storage.open(f"{version.storage_prefix}/{name}") as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            (target / ".complete").touch()
        return target


def model_version_update(*, version: ModelVersion, actor, price_per_inference=None, allow_download=None,
                         description=None) -> ModelVersion:
    if version.owner_id != actor.pk:
        raise PermissionDenied("Only the model's owner changes it.")
    changes = {}
    if price_per_inference is not None:
        price = int(price_per_inference)
        if price < 0:
            raise ValidationError({"price_per_inference": "The price cannot be negative."})
        changes["price_per_inference"] = price
    if allow_download is not None:
        changes["allow_download"] = bool(allow_download)
    if description is not None:
        changes["description"] = description[:5000]
    with transaction.atomic(durable=True):
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        # The deploy rule, from the other side: a deployed model may not start charging before its
        # attribution index is ready (deploying free, then pricing, would skip the deploy check).
        if (changes.get("price_per_inference", 0) > 0 and locked.deployed
                and locked.attribution_status != AttributionStatus.READY):
            raise ValidationError({"price_per_inference": (
                "This model is deployed and its attribution index is "
                f"{locked.get_attribution_status_display().lower()}: it cannot charge before the index is ready. "
                "Wait for the build, or undeploy it first.")})
        update = model_update(instance=locked, fields=OWNER_SETTINGS, data=changes)
        if update.has_updated:  # a settings form saved unchanged is not an action
            audit_record(actor=actor, action=AuditAction.MODEL_VERSION_UPDATE, target=version,
                         details={k: str(after) for k, (_, after) in update.changes.items()})
    version.refresh_from_db()
    return version


def model_version_set_deployed(*, version: ModelVersion, actor, deployed: bool) -> ModelVersion:
    if version.owner_id != actor.pk and not actor.is_staff:
        raise PermissionDenied("Only the model's owner deploys it.")
    with transaction.atomic(durable=True):
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if deployed and version.price_per_inference > 0 and version.attribution_status != AttributionStatus.READY:
            raise ValidationError(
                "This model cannot serve paid inference until its attribution index is ready "
                f"(it is {version.get_attribution_status_display().lower()}). Wait for the build, or set the price to 0."
            )
        # Deploying a deployed model changes nothing and is not audited again (insights counts deploy events).
        if model_update(instance=version, fields=["deployed"], data={"deployed": bool(deployed)}).has_updated:
            audit_record(actor=actor, action=AuditAction.MODEL_VERSION_DEPLOY if deployed else AuditAction.MODEL_VERSION_UNDEPLOY, target=version)
    version.refresh_from_db()
    return version


def model_version_set_attribution_status(*, version: ModelVersion, status: str) -> None:
    """Called by the attribution app as its index build progresses."""
    ModelVersion.objects.filter(pk=version.pk).update(attribution_status=status)


def model_version_adapter_zip(*, version: ModelVersion, user) -> bytes:
    if not (version.allow_download or version.owner_id == getattr(user, "pk", None)):
        raise PermissionDenied("The owner has not allowed downloads of this adapter.")
    return export_adapter_zip(model_version_local_dir(version=version))
