"""Issue an API token for an integration: ``manage.py token_create --user ci-bot --scope read``.

The key is printed once, on its own line, so a script can capture it
(``KEY=$(manage.py token_create --user ci-bot --scope write --days 30 --quiet)``).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from governance.exceptions import DomainError
from governance.models import TokenScope, User
from governance.tokens import MAX_DAYS, api_token_create

DEFAULT_DAYS = 90


class Command(BaseCommand):
    help = "Create an API token for a user and print its key (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the username the token acts as")
        parser.add_argument("--scope", required=True, choices=TokenScope.values)
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"days until it expires (1 to {MAX_DAYS}; default {DEFAULT_DAYS})",
        )
        parser.add_argument("--name", default="", help="what uses it (default: the command)")
        parser.add_argument("--quiet", action="store_true", help="print only the key")

    def handle(self, *args, user: str, scope: str, days: int, name: str, quiet: bool, **options):
        person = User.objects.filter(username=user).first()
        if person is None:
            raise CommandError(f"No user {user!r}; create them in the admin first.")
        try:
            token, key = api_token_create(
                user=person,
                name=name or f"token_create ({scope})",
                scope=scope,
                days=days,
                by=None,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if not quiet:
            self.stderr.write(
                f"Token “{token.name}” for {person.username}: {scope} scope, expires "
                f"{token.expires_at:%Y-%m-%d %H:%M} UTC. The key (not shown again):"
            )
        self.stdout.write(key)
