"""E-mail to contributors: the review of their contribution is finished (sent by a Celery task)."""

from django.conf import settings
from django.db.models import Count

from ..models import Contribution, Record, RecordStatus


def contribution_reviewed_email_send(*, contribution_id: int) -> None:
    from django.core.mail import send_mail

    from notifications.selectors import email_wanted

    contribution = Contribution.objects.select_related("datanet", "contributor").get(pk=contribution_id)
    if not email_wanted(user=contribution.contributor, kind="contribution_reviewed"):
        return  # turned off in their notification settings
    counts = dict(
        Record.objects.filter(contribution=contribution).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    send_mail(
        subject=f"Your contribution to {contribution.datanet.name} has been reviewed",
        message=(
            f"Hello {contribution.contributor.public_name},\n\n"
            f"Curators finished reviewing contribution #{contribution.pk} ({contribution.shown_name}) to "
            f"{contribution.datanet.name}: {_rows(counts.get(RecordStatus.ACCEPTED, 0))} accepted, "
            f"{counts.get(RecordStatus.REJECTED, 0)} rejected.\n\n"
            f"See each row and the reasons: {settings.SITE_URL}{contribution.get_absolute_url()}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[contribution.contributor.email],
    )


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"
