"""`manage.py seed_demo`: the demo story (see `lineage/demo/story.py`), played through the services.

Idempotent: every step first looks at what exists, so a second run changes nothing and takes seconds.
What this run did goes to stderr as it happens; stdout carries only the summary (logins, the model),
which is the same on every run."""

from django.core.management.base import BaseCommand, CommandError


def _plain(text):
    return text


class Command(BaseCommand):
    help = "Create the demo users, Datanets, model, inferences, epoch and dashboards (safe to run repeatedly)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--chain", choices=["auto", "now", "queue"], default="auto",
            help="Where the epoch close and claims run: 'now' in this process, 'queue' on the worker's chain "
                 "queue (what `make run` needs: its chain node starts after the seed), 'auto' = now when Celery "
                 "tasks run eagerly, else queue.")
        parser.add_argument("--epochs", type=int, default=None, help="Fine-tuning epochs (default: the story's).")
        parser.add_argument("--inferences", type=int, default=None, help="How many answers Uma asks for (default 300).")

    def handle(self, *args, chain, epochs, inferences, **options):
        from lineage.demo.story import INFERENCES, DemoError, seed

        def progress(line):
            self.stderr.write(line, style_func=_plain)

        try:
            report = seed(log=progress, chain=chain, epochs=epochs, inferences=inferences or INFERENCES)
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
        if not report.done:
            progress("The demo is already in place; nothing to do.")
        if report.chain == "queued":
            progress("The epoch close and claims are queued: the worker runs them once the chain node answers.")
        progress(f"Dashboards: {report.dashboards}. Seeding took {report.seconds:.0f} s.")
        if report.api_key_secret:
            progress(f"API key of user@lineage.local (shown once): {report.api_key_secret}")
        self.stdout.write(self.style.SUCCESS(f"Demo logins (password for all: {report.users.password}):"))
        for role, user in report.users.by_role.items():
            self.stdout.write(f"  {role:<12} {user.email}")
        self.stdout.write(f"Deployed model: {report.model_slug} (try it in the playground or with the openai client)")
