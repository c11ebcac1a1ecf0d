"""What notifications sends when a fine-tune finishes (see notifications/builders.py)."""


from notifications import catalogue
from notifications.builders import BuiltEvent, Email, absolute_url, stamp


def fine_tune_finished(job_id) -> BuiltEvent | None:
    from models_registry import selectors as model_selectors
    from models_registry.types import JobState

    job = model_selectors.job_by_id(pk=job_id)
    if job is None or job.state not in (JobState.SUCCEEDED, JobState.FAILED):
        return None
    succeeded = job.state == JobState.SUCCEEDED
    kind = catalogue.FINE_TUNE_SUCCEEDED if succeeded else catalogue.FINE_TUNE_FAILED
    job_url = absolute_url(job.get_absolute_url())
    details = {"id": job.pk, "name": job.name, "state": job.state, "finished_at": stamp(job.finished_at), "url": job_url}
    model = model_selectors.model_version_of_job(job=job) if succeeded else None
    if model is not None:
        details["model"] = {"slug": model.slug, "version_hash": model.version_hash, "metrics": model.metrics,
                            "url": absolute_url(model.get_absolute_url())}
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
    key = f"{kind}:{job.pk}:{stamp(job.finished_at)}"
    return BuiltEvent(key=key, type=kind, data={"fine_tune": details}, user_ids=(job.owner_id,),
                      emails=[Email(job.owner_id, "fine_tune_finished", job.owner.email, subject, body)])


# notify.event's kinds -> their builder (registered in AppConfig.ready)
BUILDERS = {
    "fine_tune.finished": fine_tune_finished,
}
