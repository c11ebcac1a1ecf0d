"""Creating a Datanet and changing its settings (`datanet_create`, `datanet_update`)."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.text import slugify

from accounts.services import AuditAction, audit_record
from datanets.ingest.schema import DatanetSchema, SchemaError
from lineage.model_update import model_update

from ..models import Datanet, Membership, Record, Role
from ..selectors import datanet_permissions

SCHEMA_FIELDS = ("task_type", "label_set", "metadata_columns", "max_field_length", "max_rows_per_contribution")
EDITABLE_FIELDS = (
    "name", "summary", "description", "tags", "licence", "visibility", "contribution_policy", "training_access",
    "near_dup_threshold", "label_set", "metadata_columns", "max_field_length", "max_rows_per_contribution",
)


def _validated_schema(**schema_fields) -> DatanetSchema:
    try:
        return DatanetSchema(**schema_fields)
    except SchemaError as exc:
        raise ValidationError({"label_set" if "label" in str(exc).lower() else "task_type": str(exc)}) from exc


def _clean_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = sorted({slugify(t)[:32] for t in (tags or []) if slugify(t)})
    if len(cleaned) > 12:
        raise ValidationError({"tags": "Use at most 12 tags."})
    return cleaned


def _unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "datanet"
    slug, n = base, 2
    while Datanet.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def datanet_create(*, owner, name: str, task_type: str, label_set=(), metadata_columns=(), summary: str = "",
                   description: str = "", tags=(), licence: str = "CC-BY-4.0", visibility: str = "public",
                   contribution_policy: str = "anyone", training_access: str = "open",
                   max_field_length: int = 10_000, max_rows_per_contribution: int = 100_000,
                   near_dup_threshold: float = 0.8, slug: str = "") -> Datanet:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the Datanet a name."})
    labels = [str(label).strip() for label in (label_set or []) if str(label).strip()]
    _validated_schema(
        task_type=task_type, label_set=tuple(labels), metadata_columns=tuple(metadata_columns or ()),
        max_field_length=max_field_length, max_rows_per_contribution=max_rows_per_contribution,
    )
    if not 0.3 <= float(near_dup_threshold) <= 1.0:
        raise ValidationError({"near_dup_threshold": "Choose a threshold between 0.3 and 1.0."})
    slug = slugify(slug) if slug else _unique_slug(name)
    if Datanet.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"The address '{slug}' is taken; choose another."})
    with transaction.atomic(durable=True):
        datanet = Datanet(
            owner=owner, name=name[:120], slug=slug, summary=summary[:280], description=description,
            tags=_clean_tags(tags), licence=licence, visibility=visibility, contribution_policy=contribution_policy,
            training_access=training_access, task_type=task_type, label_set=labels,
            metadata_columns=list(metadata_columns or ()), max_field_length=max_field_length,
            max_rows_per_contribution=max_rows_per_contribution, near_dup_threshold=float(near_dup_threshold),
        )
        datanet.full_clean()
        datanet.save()
        Membership.objects.create(datanet=datanet, user=owner, role=Role.OWNER)
        audit_record(actor=owner, action=AuditAction.DATANET_CREATE, target=datanet, details={"slug": slug, "task_type": task_type})
    return datanet


def datanet_update(*, datanet: Datanet, actor, **changes) -> Datanet:
    if not datanet_permissions(datanet=datanet, user=actor).can_manage:
        raise PermissionDenied("Only the owner changes a Datanet's settings.")
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: "This setting cannot be changed." for field in unknown})
    with transaction.atomic(durable=True):
        datanet = Datanet.objects.select_for_update().get(pk=datanet.pk)
        if "tags" in changes:
            changes["tags"] = _clean_tags(changes["tags"])
        if "label_set" in changes:
            changes["label_set"] = [str(label).strip() for label in changes["label_set"] if str(label).strip()]
            used = set(Record.objects.filter(datanet=datanet).exclude(label="").values_list("label", flat=True))
            dropped = used - set(changes["label_set"])
            if dropped:
                raise ValidationError(
                    {"label_set": f"Rows already use {', '.join(sorted(dropped))}; labels in use cannot be removed."}
                )
        schema = {field: changes.get(field, getattr(datanet, field)) for field in SCHEMA_FIELDS}
        _validated_schema(**{field: tuple(value) if field in ("label_set", "metadata_columns") else value
                             for field, value in schema.items()})
        update = model_update(instance=datanet, fields=EDITABLE_FIELDS, data=changes)
        if update.has_updated:  # a form saved unchanged is not an action
            audit_record(actor=actor, action=AuditAction.DATANET_UPDATE, target=datanet, details=update.audit_details())
    return datanet
