"""One way for a service to change some fields of a row (HackSoft's Django-Styleguide `model_update`):

    instance, has_updated = model_update(instance=datanet, fields=EDITABLE_FIELDS, data=changes)

* only names in `fields` may be changed, and each must be a concrete, editable field of the model: anything
  else in `data` is refused with a `ValidationError` naming it (bad input), a bad name in `fields` with a
  `ValueError` (a programming error), before anything is set;
* only fields whose value really differs are set, validated (`full_clean` of those fields, plus the model's
  `clean`) and saved (`save(update_fields=...)`, with any `auto_now` field such as `updated_at`);
* nothing changed: nothing is validated or saved, and `has_updated` is False, so the caller audits only real
  changes.

The result unpacks as `(instance, has_updated)` and also carries `.changes` ({field: (before, after)}) for the
audit row. Call it inside the caller's transaction, on a row it has locked (`select_for_update`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models


@dataclass(frozen=True)
class ModelUpdate:
    instance: models.Model
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field: (before, after), changed ones only

    @property
    def has_updated(self) -> bool:
        return bool(self.changes)

    def __iter__(self) -> Iterator:  # `instance, has_updated = model_update(...)`
        return iter((self.instance, self.has_updated))

    def audit_details(self) -> dict[str, dict[str, Any]]:
        """{field: {"from": before, "to": after}}: what an audit row records of this change."""
        return {name: {"from": before, "to": after} for name, (before, after) in self.changes.items()}


def _updatable_fields(model: type[models.Model], names: Iterable[str]) -> dict[str, models.Field]:
    concrete = {f.name: f for f in model._meta.concrete_fields}
    found = {}
    for name in names:
        model_field = concrete.get(name)
        if model_field is None or model_field.primary_key or not model_field.editable:
            raise ValueError(f"{model.__name__}.{name} is not a concrete, editable field: model_update cannot set it.")
        found[name] = model_field
    return found


def model_update(*, instance: models.Model, fields: Iterable[str], data: Mapping[str, Any],
                 clean: bool = True) -> ModelUpdate:
    """Set the fields of `data` (each one of `fields`) whose value differs, validate them and save only them."""
    allowed = _updatable_fields(type(instance), fields)
    refused = sorted(set(data) - set(allowed))
    if refused:
        raise ValidationError({name: f"'{name}' cannot be changed here; the fields that can are "
                                     f"{', '.join(sorted(allowed))}." for name in refused})
    changes = {}
    for name, value in data.items():
        before = getattr(instance, name)
        if before != value:
            changes[name] = (before, value)
            setattr(instance, name, value)
    if not changes:
        return ModelUpdate(instance=instance)
    if clean:
        untouched = [f.name for f in type(instance)._meta.concrete_fields if f.name not in changes]
        instance.full_clean(exclude=untouched)
    update_fields = list(changes)
    update_fields += [f.name for f in type(instance)._meta.concrete_fields
                      if getattr(f, "auto_now", False) and f.name not in changes]
    instance.save(update_fields=update_fields)
    return ModelUpdate(instance=instance, changes=changes)
