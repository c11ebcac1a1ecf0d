"""Deploying and retiring retrieval apps.

A model owner deploys an app over published versions of Documents Datanets (`app_deploy`): each version must be
of a Datanet the owner may read and build on (its training access is open to them: owners and curators, an open
Datanet, or an approved request; a private Datanet is one of those only for its members), with a ready search
index, and only one version per Datanet is taken (two versions of one Datanet share most passages). An app over a
private Datanet answers only those who may read every Datanet behind it (`selectors.apps_callable_by`): its
answers quote, and its citations name, their passages. An optional causal model (instruction or plain-text) of the
owner's own, deployed, writes answers from the passages found; without one, answers are extractive. The app
answers under its slug on `/v1/chat/completions` at once; `app_update` changes its price, passages per answer,
description or deployed flag (deploying it again checks its versions and model as `app_deploy` does), and
`app_retire` takes it off.
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils.text import slugify

from accounts.services import AuditAction, audit_record
from datanets import selectors as datanet_selectors
from models_registry import selectors as model_selectors

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
    if RetrievalApp.objects.filter(slug=slug).exists() or model_selectors.model_version_slug_taken(slug=slug):
        raise ValidationError({"name": f"The model name “{slug}” is taken; choose another name."})
    return slug


def _is_model(item, label: str) -> bool:
    """Whether `item` is an instance of the model `label` names, as a ForeignKey does ("datanets.DatanetVersion"):
    a form hands over the instances it chose, the API their ids."""
    return isinstance(item, models.Model) and item._meta.label == label


def _usable_versions(*, owner, versions) -> list:
    """The versions, checked one by one; every problem is reported at once, each naming its version."""
    ids = []
    for item in versions or []:
        pk = item.pk if _is_model(item, "datanets.DatanetVersion") else item
        if isinstance(pk, bool) or not isinstance(pk, int | str) or not str(pk).isdigit():
            raise ValidationError({"versions": f"“{item}” is not a Datanet version id."})
        ids.append(int(pk))
    if not ids:
        raise ValidationError({"versions": "Choose at least one published version of a Documents Datanet."})
    if len(set(ids)) > MAX_VERSIONS:
        raise ValidationError({"versions": f"An app searches at most {MAX_VERSIONS} versions; choose fewer."})
    found = datanet_selectors.versions_by_id(ids=ids)
    problems, usable, per_datanet = [], [], {}
    for pk in dict.fromkeys(ids):
        version = found.get(pk)
        perms = version and datanet_selectors.datanet_permissions(datanet=version.datanet, user=owner)
        if version is None or not perms.can_view:  # a private Datanet is not revealed to exist
            problems.append(f"Version {pk} does not exist or is not published where you can see it.")
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


def _causal_model(*, owner, causal_model):
    """The owner's deployed instruction or text model version (given itself or by slug), or None."""
    if causal_model in (None, ""):
        return None
    version = causal_model if _is_model(causal_model, "models_registry.ModelVersion") else (
        model_selectors.model_version_by_slug(slug=str(causal_model)))
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


def _checked_passages(passages) -> int:
    if isinstance(passages, bool) or not isinstance(passages, int) or not 1 <= passages <= settings.RETRIEVAL_MAX_K:
        raise ValidationError({"passages": f"Retrieve between 1 and {settings.RETRIEVAL_MAX_K} passages per answer."})
    return passages


def _checked_price(price) -> int:
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise ValidationError({"price_per_inference": "Give the price as a whole, non-negative number of base units."})
    return price


def _app_hash(*, slug: str, versions, model, passages: int) -> str:
    """What answers, hashed: fees and receipts name it, so it changes with anything that changes the answers."""
    return _hash({"kind": "retrieval-app", "slug": slug, "versions": sorted(v.manifest_hash for v in versions),
                  "causal_model": model.version_hash if model else None, "passages": passages})


def app_deploy(*, owner, name: str, versions, causal_model=None, price_per_inference: int = 0, passages: int = 4,
               description: str = "") -> RetrievalApp:
    """Deploy a retrieval app (audited). Raises `ValidationError` keyed by field (`name`, `versions`,
    `causal_model`, `price_per_inference`, `passages`), each message saying what to change."""
    if not getattr(owner, "is_authenticated", False):
        raise PermissionDenied("Log in to deploy a retrieval app.")
    _checked_passages(passages)
    _checked_price(price_per_inference)
    slug = _slug_for(name)
    chosen = _usable_versions(owner=owner, versions=versions)
    model = _causal_model(owner=owner, causal_model=causal_model)
    with transaction.atomic(durable=True):
        app = RetrievalApp.objects.create(
            owner=owner, name=name.strip()[:120], slug=slug, description=(description or "").strip(),
            causal_model=model, passages=passages, price_per_inference=price_per_inference,
            app_hash=_app_hash(slug=slug, versions=chosen, model=model, passages=passages))
        app.versions.set(chosen)
        audit_record(actor=owner, action=AuditAction.RETRIEVAL_APP_DEPLOY, target=app,
                     details={"slug": slug, "versions": [str(v) for v in chosen], "price": str(price_per_inference),
                              "causal_model": model.slug if model else None, "passages": passages})
    return app


def app_retire(*, app: RetrievalApp, actor) -> RetrievalApp:
    """Take the app off the API and the playground (its receipts and fees stay). Idempotent."""
    if app.owner_id != getattr(actor, "pk", None) and not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only the app's owner retires it.")
    with transaction.atomic(durable=True):
        if RetrievalApp.objects.filter(pk=app.pk, state=AppState.ACTIVE).update(state=AppState.RETIRED):
            audit_record(actor=actor, action=AuditAction.RETRIEVAL_APP_RETIRE, target=app, details={"slug": app.slug})
    app.refresh_from_db()
    return app


def _redeploy_problems(app: RetrievalApp) -> list[str]:
    """Why a retired app may not answer again: its versions and model, checked as `app_deploy` checks them."""
    problems = []
    try:
        _usable_versions(owner=app.owner, versions=list(app.versions.values_list("pk", flat=True)))
        if app.causal_model_id:
            _causal_model(owner=app.owner, causal_model=app.causal_model)
    except ValidationError as exc:
        problems = [m for messages in exc.message_dict.values() for m in messages]
    return problems


_UNSET = object()


def app_update(*, app: RetrievalApp, actor, price_per_inference=_UNSET, passages=_UNSET, description=_UNSET,
               deployed=_UNSET) -> RetrievalApp:
    """Change what the owner may change after deploying (audited, only what changed): the price, the passages per
    answer (a new `app_hash`: the answers change, and later receipts and fees name the new one), the description,
    and whether it is deployed (false retires it; true deploys a retired app again once its versions and model
    still pass `app_deploy`'s checks). Raises `PermissionDenied` for anyone but the owner, `ValidationError` keyed
    by field."""
    if app.owner_id != getattr(actor, "pk", None):
        raise PermissionDenied("Only the app's owner changes it.")
    if price_per_inference is not _UNSET:
        _checked_price(price_per_inference)
    if passages is not _UNSET:
        _checked_passages(passages)
    if deployed is not _UNSET and not isinstance(deployed, bool):
        raise ValidationError({"deployed": "Say true (the app answers) or false (it is retired)."})
    if description is not _UNSET and not isinstance(description, str):
        raise ValidationError({"description": "Give the description as text."})
    with transaction.atomic(durable=True):
        app = RetrievalApp.objects.select_for_update(of=("self",)).select_related("owner", "causal_model").get(pk=app.pk)
        changes = {}
        if price_per_inference is not _UNSET and int(app.price_per_inference) != price_per_inference:
            changes["price_per_inference"] = [str(int(app.price_per_inference)), str(price_per_inference)]
            app.price_per_inference = price_per_inference
        if passages is not _UNSET and app.passages != passages:
            changes["passages"] = [app.passages, passages]
            app.passages = passages
            app.app_hash = _app_hash(slug=app.slug, versions=list(app.versions.all()), model=app.causal_model,
                                     passages=passages)
        if description is not _UNSET and app.description != description.strip():
            changes["description"] = [app.description[:200], description.strip()[:200]]
            app.description = description.strip()
        state = AppState.ACTIVE if deployed is True else AppState.RETIRED if deployed is False else app.state
        if state != app.state:
            if state == AppState.ACTIVE and (problems := _redeploy_problems(app)):
                raise ValidationError({"deployed": [f"“{app.slug}” cannot answer again: {p}" for p in problems]})
            changes["state"] = [app.state, state]
            app.state = state
        if changes:
            app.save()
            audit_record(actor=actor, action=AuditAction.RETRIEVAL_APP_UPDATE, target=app,
                         details={"slug": app.slug, "changes": changes})
    return app
