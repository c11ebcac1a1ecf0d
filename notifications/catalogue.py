"""What can be notified: the e-mail kinds a person may turn off, and the webhook event types."""

from dataclasses import dataclass


@dataclass(frozen=True)
class EmailKind:
    field: str  # the NotificationSettings column that holds the choice
    label: str
    help: str


EMAIL_KINDS = {
    "contribution_reviewed": EmailKind(
        "email_contribution_reviewed", "A contribution of mine has been reviewed",
        "Sent when curators have decided every row of one of your uploads."),
    "fine_tune_finished": EmailKind(
        "email_fine_tune_finished", "A fine-tune of mine finished or failed",
        "Sent when a training job you launched registers its model, or stops with an error."),
    "access_decided": EmailKind(
        "email_access_decided", "My request to train on a Datanet was decided",
        "Sent when a Datanet's owner approves or refuses your training-access request."),
    "earnings_claimable": EmailKind(
        "email_earnings_claimable", "Earnings of mine can be claimed",
        "Sent when an epoch closes and publishes OPEN for your wallet."),
}

# Webhook event types a webhook may subscribe to, with what they mean. `scopes` says which webhooks may
# receive them: "user" (a person's own webhooks) and/or "datanet" (a Datanet's webhooks, set by its owner).
CONTRIBUTION_VALIDATED = "contribution.validated"
VERSION_PUBLISHED = "version.published"
FINE_TUNE_SUCCEEDED = "fine_tune.succeeded"
FINE_TUNE_FAILED = "fine_tune.failed"
EPOCH_CLOSED = "epoch.closed"
TEST_EVENT = "webhook.test"  # the "Send test event" button; never subscribed to


@dataclass(frozen=True)
class EventType:
    label: str
    scopes: tuple[str, ...]


EVENT_TYPES = {
    CONTRIBUTION_VALIDATED: EventType("An upload's rows were checked (accepted, rejected, duplicates)", ("user", "datanet")),
    VERSION_PUBLISHED: EventType("A Datanet version was published", ("user", "datanet")),
    FINE_TUNE_SUCCEEDED: EventType("A fine-tune finished and registered its model", ("user",)),
    FINE_TUNE_FAILED: EventType("A fine-tune failed", ("user",)),
    EPOCH_CLOSED: EventType("An epoch closed and published earnings for your wallet", ("user",)),
}


def event_types_for(scope: str) -> list[str]:
    return [name for name, kind in EVENT_TYPES.items() if scope in kind.scopes]
