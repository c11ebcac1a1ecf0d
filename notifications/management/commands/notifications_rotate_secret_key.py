"""`python manage.py notifications_rotate_secret_key [--dry-run]`: re-encrypt every webhook signing secret
under the current `NOTIFICATIONS_SECRET_KEY`, after that key (or the `SECRET_KEY` it defaults to) changed.

The old key comes from the environment variable `NOTIFICATIONS_OLD_SECRET_KEY` (another name with
`--old-key-env`), from a file (`--old-key-file`, trailing newline stripped) or, last resort, from `--old-key`
(which shell history and process lists keep). It is never printed. `--old-key-is-secret-key`: the old value is
the old Django `SECRET_KEY`, from which the old default key is derived.

All or nothing, in one transaction, audited: a secret that neither key opens stops the run before anything is
written, naming the webhooks. `--dry-run` reports what would be re-encrypted and writes nothing.
"""

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

DEFAULT_ENV = "NOTIFICATIONS_OLD_SECRET_KEY"


class Command(BaseCommand):
    help = "Re-encrypt every webhook signing secret under the current NOTIFICATIONS_SECRET_KEY."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--old-key-env", default=DEFAULT_ENV, metavar="NAME",
                            help=f"the environment variable holding the old key (default {DEFAULT_ENV})")
        source.add_argument("--old-key-file", type=Path, default=None, metavar="PATH",
                            help="a file holding the old key (trailing newline stripped)")
        source.add_argument("--old-key", default=None, metavar="KEY",
                            help="the old key itself (kept by shell history and process lists: prefer the others)")
        parser.add_argument("--old-key-is-secret-key", action="store_true",
                            help="the old value is the old SECRET_KEY the old NOTIFICATIONS_SECRET_KEY was derived from")
        parser.add_argument("--dry-run", action="store_true", help="report what would be re-encrypted; change nothing")

    def handle(self, *args, old_key_env, old_key_file, old_key, old_key_is_secret_key, dry_run, **options):
        from notifications.secret_box import key_from_secret_key
        from notifications.services import SecretKeyRotationRefused, webhook_secrets_rotate

        old = self._old_key(env_name=old_key_env, path=old_key_file, given=old_key)
        if old_key_is_secret_key:
            old = key_from_secret_key(old)
        try:
            report = webhook_secrets_rotate(old_key=old, dry_run=dry_run)
        except SecretKeyRotationRefused as exc:
            raise CommandError(str(exc)) from None  # the message names no key
        except DatabaseError as exc:  # nothing was written: the transaction rolled back
            raise CommandError(f"The webhooks could not be read or written ({exc}). Check DATABASE_URL and run "
                               "`manage.py migrate`, then run this again; nothing was changed.") from None
        total = len(report.rotated) + len(report.already_current)
        if not total:
            self.stdout.write("no webhooks: nothing to re-encrypt")
            return
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        line = (f"{verb} {len(report.rotated)} of {total} webhook secret{'s' if total != 1 else ''} under the current "
                f"NOTIFICATIONS_SECRET_KEY; {len(report.already_current)} already used it")
        if dry_run:
            line = f"dry run: {line}; nothing was changed"
        self.stdout.write(line)

    def _old_key(self, *, env_name: str, path: Path | None, given: str | None) -> str:
        if given is not None:
            key, where = given, "--old-key"
        elif path is not None:
            try:
                key = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"--old-key-file {path} cannot be read ({type(exc).__name__}): give a readable "
                                   "file holding the old key.") from None
            where = f"the file {path}"
        else:
            key, where = os.environ.get(env_name, ""), f"the environment variable {env_name}"
            if not key:
                raise CommandError(f"No old key: set {env_name} to the key the secrets were encrypted with (or use "
                                   "--old-key-file); it is read from there so that it stays out of shell history.")
        if not key:
            raise CommandError(f"The old key from {where} is empty: give the key the secrets were encrypted with.")
        return key
