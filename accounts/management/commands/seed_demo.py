"""Idempotent demo data. Each app adds its part through a `seed_demo` function in its services, so
this command stays a list of steps; running it twice changes nothing the second time."""

from django.core.management.base import BaseCommand

from accounts.services import demo_users_ensure


class Command(BaseCommand):
    help = "Create the demo users and data (safe to run repeatedly)."

    def handle(self, *args, **options):
        users = demo_users_ensure()
        self.stdout.write(self.style.SUCCESS(f"Demo logins (password for all: {users.password}):"))
        for role, user in users.by_role.items():
            self.stdout.write(f"  {role:<12} {user.email}")
