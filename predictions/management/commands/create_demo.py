from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from knox.models import AuthToken

from predictions.models import Membership, Organisation


class Command(BaseCommand):
    help = (
        "Create a demo organisation and clinician (idempotent) and print the login and a new API "
        "token (tokens are stored hashed, so the demo user's previous one is revoked)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", default="Demo Clinic")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", help="default: a new random password on creation")

    def handle(
        self, *args: Any, organisation: str, username: str, password: str | None, **options: Any
    ) -> None:
        clinic, _ = Organisation.objects.get_or_create(name=organisation)
        user, created = get_user_model().objects.get_or_create(username=username)
        if created or password:
            password = password or secrets.token_urlsafe(12)
            user.set_password(password)
            user.save()
        Membership.objects.get_or_create(user=user, defaults={"organisation": clinic})
        AuthToken.objects.filter(user=user).delete()
        _, key = AuthToken.objects.create(user=user)
        shown = password or "(unchanged; pass --password to reset it)"
        self.stdout.write(
            f"organisation: {clinic.name}\nusername: {username}\n"
            f"password: {shown}\napi token: {key}"
        )
