"""`python manage.py inference_prune_model_root [--dry-run]`: keep the model root under its bound.

Removes the least recently used adapters from `INFERENCE_MODEL_ROOT` until it holds no more than
`INFERENCE_MODEL_ROOT_MAX_BYTES` (or `--max-bytes`), never one that is deployed, held by a model server
(its `/v1/health` or its lease in the root) or used in the last `--min-age` seconds. `--dry-run` says
what would go and removes nothing. Run it where the root is mounted (the deployment poller's machine).
"""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Remove the least recently used adapters no server holds until the model root fits its bound."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report what would be removed; remove nothing")
        parser.add_argument("--root", default=None, help="the model root (default INFERENCE_MODEL_ROOT)")
        parser.add_argument("--max-bytes", type=int, default=None,
                            help="the bound in bytes (default INFERENCE_MODEL_ROOT_MAX_BYTES; 0: no bound)")
        parser.add_argument("--min-age", type=float, default=None,
                            help="keep adapters used within this many seconds (default 600)")

    def handle(self, *args, dry_run, root, max_bytes, min_age, **options):
        from inference.engine.pruning import format_bytes
        from inference.model_root import model_root_prune

        if min_age is not None and min_age < 0:
            raise CommandError("--min-age must be a number of seconds >= 0")
        try:
            report = model_root_prune(root=root, max_bytes=max_bytes, dry_run=dry_run, min_age_s=min_age)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        plan = report.plan
        for url, why in report.down.items():
            self.stderr.write(f"model server {url} did not answer ({why.rstrip('.')}): what it holds is kept only "
                              "if its lease is in this root")
        self.stdout.write(f"model root {plan.root}: {format_bytes(plan.total_bytes)} of "
                          f"{format_bytes(plan.max_bytes)}")
        if not plan.remove and not plan.over:
            self.stdout.write("within its bound: nothing to remove")
            return
        verb = "would remove" if dry_run else "removed"
        done = plan.remove if dry_run else plan.removed
        for entry in done:
            used = datetime.fromtimestamp(entry.last_used, UTC).strftime("%Y-%m-%d %H:%M UTC")
            self.stdout.write(f"{verb} adapters/{entry.version} ({format_bytes(entry.bytes)}, last used {used})")
        for entry in plan.in_use:
            self.stdout.write(f"kept adapters/{entry.version}: in use (deployed or held by a model server)")
        for entry in plan.recent:
            self.stdout.write(f"kept adapters/{entry.version}: used in the last {report_min_age(min_age)}")
        after = f"{'would be' if dry_run else 'now'} {format_bytes(plan.after_bytes)}"
        if plan.over:
            self.stderr.write(f"{after}, still over the bound: what is left is in use, recent, or base models "
                              "(unload a base or raise INFERENCE_MODEL_ROOT_MAX_BYTES)")
        else:
            self.stdout.write(after)


def report_min_age(min_age: float | None) -> str:
    from inference.engine.pruning import MIN_AGE_S

    seconds = MIN_AGE_S if min_age is None else min_age
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
