"""From a kind and an object id (what `notify.event` was given) to what is sent: the event's key, type and
data, whose webhooks receive it, and the e-mails. Each builder reads the object as it is now and returns
None when there is nothing to say (the object is gone, or it is not in the state the kind is about: a
cancelled fine-tune, a pending request).

A builder only reads; `services.dispatch` records the event (once per key) and sends.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.urls import reverse

from . import catalogue


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


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _stamp(moment) -> str:
    return moment.isoformat() if moment else ""


def contribution_validated(contribution_id) -> BuiltEvent | None:
    from datanets import selectors as datanet_selectors
    from datanets.types import ContributionState

    contribution = datanet_selectors.contribution_by_id(pk=contribution_id)
    if contribution is None or contribution.state not in (ContributionState.IN_REVIEW, ContributionState.DONE):
        return None
    data = {"contribution": {
        "id": contribution.pk, "datanet": contribution.datanet.slug, "contributor_id": contribution.contributor_id,
        "file_name": contribution.file_name, "state": contribution.state, "rows_total": contribution.rows_total,
        "rows_accepted": contribution.rows_accepted, "rows_rejected": contribution.rows_rejected,
        "rows_duplicate": contribution.rows_duplicate, "rows_near_duplicate": contribution.rows_near_duplicate,
        "validated_at": _stamp(contribution.validated_at), "url": _absolute(contribution.get_absolute_url()),
    }}
    return BuiltEvent(key=f"{catalogue.CONTRIBUTION_VALIDATED}:{contribution.pk}", type=catalogue.CONTRIBUTION_VALIDATED,
                      data=data, user_ids=(contribution.contributor_id,), datanet_id=contribution.datanet_id)


def version_published(version_id) -> BuiltEvent | None:
    from datanets import selectors as datanet_selectors

    version = datanet_selectors.version_by_id(pk=version_id)
    if version is None:
        return None
    datanet = version.datanet
    data = {"version": {
        "datanet": datanet.slug, "number": version.number, "manifest_hash": version.manifest_hash,
        "rows": version.row_count, "contributors": version.contributor_count, "licence": datanet.licence,
        "published_at": _stamp(version.created_at),
        "url": _absolute(reverse("datanets:version", args=[datanet.slug, version.number])),
    }}
    return BuiltEvent(key=f"{catalogue.VERSION_PUBLISHED}:{version.pk}", type=catalogue.VERSION_PUBLISHED, data=data,
                      user_ids=tuple(sorted({datanet.owner_id, version.created_by_id})), datanet_id=datanet.pk)


def fine_tune_finished(job_id) -> BuiltEvent | None:
    from models_registry import selectors as model_selectors
    from models_registry.types import JobState

    job = model_selectors.job_by_id(pk=job_id)
    if job is None or job.state not in (JobState.SUCCEEDED, JobState.FAILED):
        return None
    succeeded = job.state == JobState.SUCCEEDED
    kind = catalogue.FINE_TUNE_SUCCEEDED if succeeded else catalogue.FINE_TUNE_FAILED
    job_url = _absolute(job.get_absolute_url())
    details = {"id": job.pk, "name": job.name, "state": job.state, "finished_at": _stamp(job.finished_at), "url": job_url}
    model = model_selectors.model_version_of_job(job=job) if succeeded else None
    if model is not None:
        details["model"] = {"slug": model.slug, "version_hash": model.version_hash, "metrics": model.metrics,
                            "url": _absolute(model.get_absolute_url())}
    if not succeeded:
        details["error"] = job.error
    if succeeded:
        subject = f"Your fine-tune “{job.name}” finished"
        body = (f"Hello {job.owner.public_name},\n\nYour fine-tune “{job.name}” (#{job.pk}) finished and registered "
                f"its model{f' {model.slug}' if model else ''}.\n\n"
                f"See its metrics and deploy it: {details.get('model', {}).get('url', job_url)}\n")
    else:
        subject = f"Your fine-tune “{job.name}” failed"
        body = (f"Hello {job.owner.public_name},\n\nYour fine-tune “{job.name}” (#{job.pk}) stopped with an error:\n\n"
                f"    {job.error}\n\nSee its log and resume or relaunch it: {job_url}\n")
    # A resumed job can finish again: each finish is its own event.
    key = f"{kind}:{job.pk}:{_stamp(job.finished_at)}"
    return BuiltEvent(key=key, type=kind, data={"fine_tune": details}, user_ids=(job.owner_id,),
                      emails=[Email(job.owner_id, "fine_tune_finished", job.owner.email, subject, body)])


def access_request_decided(request_id) -> BuiltEvent | None:
    from datanets import selectors as datanet_selectors
    from datanets.types import AccessState

    request = datanet_selectors.training_access_request_by_id(pk=request_id)
    if request is None or request.state == AccessState.PENDING:
        return None
    datanet, requester = request.datanet, request.requester
    if request.state == AccessState.APPROVED:
        subject = f"You may now train on {datanet.name}"
        body = (f"Hello {requester.public_name},\n\nThe owner of {datanet.name} approved your request to train on it. "
                f"Its versions are now offered when you launch a fine-tune: "
                f"{_absolute(reverse('models_registry:job_create'))}\n")
    else:
        subject = f"Your request to train on {datanet.name} was refused"
        body = (f"Hello {requester.public_name},\n\nThe owner of {datanet.name} refused your request to train on it. "
                f"If you think they should reconsider, contact them from the Datanet's page: "
                f"{_absolute(datanet.get_absolute_url())}\n")
    # E-mail only: there is no webhook event for it (the owner made the decision; the requester is told).
    return BuiltEvent(key=f"access_request.{request.state}:{request.pk}:{_stamp(request.decided_at)}",
                      type=f"access_request.{request.state}", data={"access_request": {"id": request.pk}},
                      emails=[Email(requester.pk, "access_decided", requester.email, subject, body)])


def epoch_closed(epoch_id) -> BuiltEvent | None:
    from django.contrib.auth import get_user_model

    from rewards import selectors as rewards_selectors
    from rewards.amounts import format_open
    from rewards.types import EpochState

    epoch = rewards_selectors.epoch_by_id(pk=epoch_id)
    if epoch is None or epoch.state != EpochState.CLOSED:
        return None
    allocations = rewards_selectors.epoch_allocations(epoch=epoch)
    users = {pk: (email, display or username) for pk, email, display, username in get_user_model().objects.filter(
        pk__in=[user_id for user_id, _, _ in allocations]).values_list("pk", "email", "display_name", "username")}
    claim_url = _absolute(reverse("rewards:claim"))
    data = {"epoch": {"number": epoch.number, "root": epoch.root, "increase": str(int(epoch.increase)),
                      "total_cumulative": str(int(epoch.total_cumulative)), "accounts": len(allocations),
                      "closed_at": _stamp(epoch.closed_at)}}
    per_user, emails = {}, []
    for user_id, amount, address in allocations:
        amount_open = format_open(amount)
        per_user[user_id] = {"allocation": {"amount": str(int(amount)), "amount_open": amount_open, "address": address,
                                            "claim_url": claim_url}}
        email, name = users.get(user_id, ("", ""))
        emails.append(Email(user_id, "earnings_claimable", email, f"{amount_open} OPEN from epoch {epoch.number} can be claimed",
                            f"Hello {name},\n\nEpoch {epoch.number} has closed and published {amount_open} OPEN of your "
                            f"earnings for your wallet {address}. Claim it (or see it relayed to you): {claim_url}\n"))
    return BuiltEvent(key=f"{catalogue.EPOCH_CLOSED}:{epoch.pk}", type=catalogue.EPOCH_CLOSED, data=data,
                      user_ids=tuple(sorted(per_user)), per_user=per_user, emails=emails)


# notify.event's kinds -> their builder.
BUILDERS = {
    "contribution.validated": contribution_validated,
    "version.published": version_published,
    "fine_tune.finished": fine_tune_finished,
    "access_request.decided": access_request_decided,
    "epoch.closed": epoch_closed,
}
