"""What notifications sends about a Datanet's contributions, versions and training-access requests
(see notifications/builders.py)."""

from django.urls import reverse

from notifications import catalogue
from notifications.builders import BuiltEvent, Email, absolute_url, stamp


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
        "validated_at": stamp(contribution.validated_at), "url": absolute_url(contribution.get_absolute_url()),
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
        "published_at": stamp(version.created_at),
        "url": absolute_url(reverse("datanets:version", args=[datanet.slug, version.number])),
    }}
    return BuiltEvent(key=f"{catalogue.VERSION_PUBLISHED}:{version.pk}", type=catalogue.VERSION_PUBLISHED, data=data,
                      user_ids=tuple(sorted({datanet.owner_id, version.created_by_id})), datanet_id=datanet.pk)


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
                f"{absolute_url(reverse('models_registry:job_create'))}\n")
    else:
        subject = f"Your request to train on {datanet.name} was refused"
        body = (f"Hello {requester.public_name},\n\nThe owner of {datanet.name} refused your request to train on it. "
                f"If you think they should reconsider, contact them from the Datanet's page: "
                f"{absolute_url(datanet.get_absolute_url())}\n")
    # E-mail only: there is no webhook event for it (the owner made the decision; the requester is told).
    return BuiltEvent(key=f"access_request.{request.state}:{request.pk}:{stamp(request.decided_at)}",
                      type=f"access_request.{request.state}", data={"access_request": {"id": request.pk}},
                      emails=[Email(requester.pk, "access_decided", requester.email, subject, body)])


# notify.event's kinds -> their builder (registered in AppConfig.ready)
BUILDERS = {
    "contribution.validated": contribution_validated,
    "version.published": version_published,
    "access_request.decided": access_request_decided,
}
