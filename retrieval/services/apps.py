"""Deploying and retiring retrieval apps.

A model owner deploys an app over published versions of Documents Datanets (`app_deploy`): each version must be
of a public Datanet (an app answers anyone, and its citations name the Datanet and quote its passages), one the
owner may build on (its training access is open to them: owners and curators, an open Datanet, or an approved
request), with a ready search index, and only one version per Datanet is taken (two versions of one Datanet share
most passages). An optional causal model (instruction or
plain-text) of the owner's own, deployed, writes answers from the passages found; without one, answers are
extractive. The app answers under its slug on `/v1/chat/completions` at once; `app_retire` takes it off.
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.text import slugify

from accounts.services import AuditAction, audit_record
from datanets import selectors as datanet_selectors
from datanets.models import DatanetVersion
from models_registry.models import ModelVersion

from .. import selectors
from ..engine.store import canonical_json
from ..errors import IndexNotReady, NotSearchable
from ..models import AppState, RetrievalApp

CAUSAL_TASKS = ("instruction", "text")
MAX_VERSIONS = 20
# Model versions are named `<name>-<8 or 16 hex digits>` (models_registry): an app slug shaped like that could
# later collide with one, so it is refused.
_RESERVED_SLUGS = {"new", "receipts"}  # paths under /retrieval-apps/
_MODEL_SLUG_TAIL = re.compile(r"-(?:[0-9a-f]{8}|[0-9a-f]{16})$")


def _hash(payload) -> str:
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def _slug_for(name: str) -> str:
    slug = slugify(name or "")[:90]
    if not slug:
        raise ValidationError({"name": "Give the app a name with some letters or digits: it becomes its model name."})
    if _MODEL_SLUG_TAIL.search(slug):
        raise ValidationError({"name": f"“{slug}” ends like a model version's name (a dash and 8 or 16 hex digits); "
                                       "change the end of the name."})
    if slug in _RESERVED_SLUGS:
        raise ValidationError({"name": f"“{slug}” names a page of the retrieval apps; choose another name."})
    if RetrievalApp.objects.filter(slug=slug).exists() or ModelVersion.objects.filter(slug=slug).exists():
        raise ValidationError({"name": f"The model name “{slug}” is taken; choose another name."})
    return slug


def _usable_versions(*, owner, versions) -> list[DatanetVersion]:
    """The versions, checked one by one; every problem is reported at once, each naming its version."""
    ids = []
    for item in versions or []:
        pk = item.pk if isinstance(item, DatanetVersion) else item
        if isinstance(pk, bool) or not isinstance(pk, int | str) or not str(pk).isdigit():
            raise ValidationError({"versions": f"“{item}” is not a Datanet version id."})
        ids.append(int(pk))
    if not ids:
        raise ValidationError({"versions": "Choose at least one published version of a Documents Datanet."})
    if len(set(ids)) > MAX_VERSIONS:
        raise ValidationError({"versions": f"An app searches at most {MAX_VERSIONS} versions; choose fewer."})
    found = {v.pk: v for v in DatanetVersion.objects.filter(pk__in=ids).select_related("datanet")}
    problems, usable, per_datanet = [], [], {}
    for pk in dict.fromkeys(ids):
        version = found.get(pk)
        perms = version and datanet_selectors.datanet_permissions(datanet=version.datanet, user=owner)
        if version is None or not perms.can_view:  # a private Datanet is not revealed to exist
            problems.append(f"Version {pk} does not exist or is not published where you can see it.")
            continue
        if not version.datanet.is_public:
            problems.append(f"{version}: {version.datanet.name} is private, and a retrieval app answers anyone (its "
                            "citations name the Datanet and quote its passages); only public Datanets can be used.")
            continue
        if not perms.can_train:
            problems.append(f"{version}: {version.datanet.name} lets only the people its owner approves build on "
                            "it; request access on its page first.")
            continue
        try:
            selectors.searchable_index(version=version)
        except NotSearchable as exc:
            problems.append(f"{version}: {exc}")
            continue
        except IndexNotReady as exc:
            problems.append(f"{version}: {exc.message} Deploy the app once its index is ready.")
            continue
        if version.datanet_id in per_datanet:
            problems.append(f"{per_datanet[version.datanet_id]} and {version} are two versions of one Datanet; "
                            "choose one.")
            continue
        per_datanet[version.datanet_id] = version
        usable.append(version)
    if problems:
        raise ValidationError({"versions": problems})
    return usable


def _causal_model(*, owner, causal_model) -> ModelVersion | None:
    if causal_model in (None, ""):
        return None
    version = causal_model if isinstance(causal_model, ModelVersion) else (
        ModelVersion.objects.filter(slug=str(causal_model)).first())
    if version is None or version.owner_id != owner.pk:
        raise ValidationError({"causal_model": "Choose one of your own model versions (or none, for extractive "
                                               "answers)."})
    if version.task not in CAUSAL_TASKS:
        raise ValidationError({"causal_model": f"{version.name} is a {version.task} model; only an instruction or "
                                               "text model writes answers. Choose another, or none."})
    if not version.deployed:
        raise ValidationError({"causal_model": f"{version.name} is not deployed; deploy it on its page first, so "
                                               "the model servers load it."})
    return version


def app_deploy(*, owner, name: str, versions, causal_model=None, price_per_inference: int = 0, passages: int = 4,
               description: str = "") -> RetrievalApp:
    """Deploy a retrieval app (audited). Raises `ValidationError` keyed by field (`name`, `versions`,
    `causal_model`, `price_per_inference`, `passages`), each message saying what to change."""
    if not getattr(owner, "is_authenticated", False):
        raise PermissionDenied("Log in to deploy a retrieval app.")
    if isinstance(passages, bool) or not isinstance(passages, int) or not 1 <= passages <= settings.RETRIEVAL_MAX_K:
        raise ValidationError({"passages": f"Retrieve between 1 and {settings.RETRIEVAL_MAX_K} passages per answer."})
    if isinstance(price_per_inference, bool) or not isinstance(price_per_inference, int) or price_per_inference < 0:
        raise ValidationError({"price_per_inference": "Give the price as a whole, non-negative number of base units."})
    slug = _slug_for(name)
    chosen = _usable_versions(owner=owner, versions=versions)
    model = _causal_model(owner=owner, causal_model=causal_model)
    identity = {"kind": "retrieval-app", "slug": slug, "versions": sorted(v.manifest_hash for v in chosen),
                "causal_model": model.version_hash if model else None, "passages": passages}
    with transaction.atomic():
        app = RetrievalApp.objects.create(
            owner=owner, name=name.strip()[:120], slug=slug, description=(description or "").strip(),
            causal_model=model, passages=passages, price_per_inference=price_per_inference, app_hash=_hash(identity))
        app.versions.set(chosen)
        audit_record(actor=owner, action=AuditAction.RETRIEVAL_APP_DEPLOY, target=app,
                     details={"slug": slug, "versions": [str(v) for v in chosen], "price": str(price_per_inference),
                              "causal_model": model.slug if model else None, "passages": passages})
    return app


def app_retire(*, app: RetrievalApp, actor) -> RetrievalApp:
    """Take the app off the API and the playground (its receipts and fees stay). Idempotent."""
    if app.owner_id != getattr(actor, "pk", None) and not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only the app's owner retires it.")
    with transaction.atomic():
        if RetrievalApp.objects.filter(pk=app.pk, state=AppState.ACTIVE).update(state=AppState.RETIRED):
            audit_record(actor=actor, action=AuditAction.RETRIEVAL_APP_RETIRE, target=app, details={"slug": app.slug})
    app.refresh_from_db()
    return app
