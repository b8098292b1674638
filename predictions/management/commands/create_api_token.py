from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from knox.models import AuthToken


class Command(BaseCommand):
    help = (
        "Issue a new API token for a user and print it: the only time it is shown, since only "
        "its hash is stored (--rotate revokes the user's other tokens first)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="revoke the old tokens first")

    def handle(self, *args: Any, username: str, rotate: bool, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if rotate:
            AuthToken.objects.filter(user=user).delete()
        _, key = AuthToken.objects.create(user=user)
        self.stdout.write(key)
