"""A Datanet's webhooks need two answers only the datanets app has: which Datanets a person manages, and
whether they still manage one. datanets registers them in `AppConfig.ready` (datanets/apps.py): datanets
calls notifications to send its events, so notifications never imports datanets
(tests/foundation/test_app_import_graph.py)."""

from collections.abc import Callable

_answers: dict[str, Callable] = {}


def register(*, datanets_managed_by: Callable, datanet_permissions: Callable) -> None:
    _answers["datanets_managed_by"] = datanets_managed_by
    _answers["datanet_permissions"] = datanet_permissions


def _answer(name: str) -> Callable:
    if name not in _answers:
        raise LookupError("the datanets app has not registered its answers (is it installed?)")
    return _answers[name]


def datanets_managed_by(*, user):
    """Datanets this person owns (their webhooks may be set)."""
    return _answer("datanets_managed_by")(user=user)


def datanet_permissions(*, datanet, user):
    """What this person may do on this Datanet (`.can_manage` is read here)."""
    return _answer("datanet_permissions")(datanet=datanet, user=user)
