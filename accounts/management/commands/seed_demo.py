"""Idempotent demo data. Each app adds its part through a `demo_seed`-style service, so this command
stays a list of steps; running it twice changes nothing the second time."""

from django.core.management.base import BaseCommand

from accounts.services import demo_users_ensure
from models_registry.services import base_model_ensure_default
from rewards.services import demo_seed as rewards_demo_seed


class Command(BaseCommand):
    help = "Create the demo users and data (safe to run repeatedly)."

    def handle(self, *args, **options):
        users = demo_users_ensure()
        base_model_ensure_default()
        rewards_demo_seed(users_by_role=users.by_role)
        self.stdout.write(self.style.SUCCESS(f"Demo logins (password for all: {users.password}):"))
        for role, user in users.by_role.items():
            self.stdout.write(f"  {role:<12} {user.email}")
