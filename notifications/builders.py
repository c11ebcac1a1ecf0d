"""From a kind and an object id (what `notify.event` was given) to what is sent: the event's key, type and
data, whose webhooks receive it, and the e-mails. Each builder reads the object as it is now and returns
None when there is nothing to say (the object is gone, or it is not in the state the kind is about: a
cancelled fine-tune, a pending request).

A builder lives with the app that owns its object (`datanets/notification_events.py`,
`models_registry/notification_events.py`, `rewards/notification_events.py`) and is registered here from that
app's `AppConfig.ready`: those apps call notifications to send their events, so notifications never imports
them (tests/foundation/test_app_import_graph.py).

A builder only reads; `services.dispatch` records the event (once per key) and sends.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings


@dataclass(frozen=True)
class Email:
    user_id: int
    kind: str  # a key of catalogue.EMAIL_KINDS
    to: str
    subject: str
    body: str


@dataclass
class BuiltEvent:
    key: str  # one event per key, however often the dispatch is delivered
    type: str
    data: dict
    user_ids: tuple[int, ...] = ()  # whose own webhooks receive it
    datanet_id: int | None = None  # whose Datanet webhooks receive it
    per_user: dict = field(default_factory=dict)  # {user id: extra data for that person's own webhooks}
    emails: list[Email] = field(default_factory=list)


def absolute_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def stamp(moment) -> str:
    return moment.isoformat() if moment else ""


# notify.event's kinds -> their builder, filled by register_builder at start-up.
BUILDERS: dict[str, Callable[[object], BuiltEvent | None]] = {}


def register_builder(kind: str, builder: Callable[[object], BuiltEvent | None]) -> None:
    BUILDERS[kind] = builder
