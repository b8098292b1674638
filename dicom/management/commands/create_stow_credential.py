from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dicom.models import StowCredential
from predictions.models import Organisation


class Command(BaseCommand):
    help = (
        "Issue the HTTP Basic credential a PACS uses to push studies into an organisation "
        "by STOW-RS (POST /dicomweb/studies). The secret is printed once and stored hashed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organisation", help="the organisation's name")
        parser.add_argument("username", help="a name for this PACS, e.g. orthanc-radiology")

    def handle(self, *args: Any, organisation: str, username: str, **options: Any) -> None:
        try:
            owner = Organisation.objects.get(name=organisation)
        except Organisation.DoesNotExist:
            raise CommandError(f"No organisation named {organisation!r}.") from None
        if StowCredential.objects.filter(username=username).exists():
            raise CommandError(f"The username {username!r} is taken.")
        _, secret = StowCredential.issue(owner, username)
        self.stdout.write(f"username: {username}\npassword: {secret}")
