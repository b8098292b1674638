from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from predictions.models import Membership


def test_create_api_token_prints_a_stable_token(clinician: Any, capsys: Any) -> None:
    call_command("create_api_token", clinician.username)
    first = capsys.readouterr().out.strip()
    call_command("create_api_token", clinician.username)
    assert capsys.readouterr().out.strip() == first == Token.objects.get(user=clinician).key


def test_create_api_token_rotate_revokes_the_old_token(clinician: Any, capsys: Any) -> None:
    old = Token.objects.create(user=clinician).key
    call_command("create_api_token", clinician.username, "--rotate")
    new = capsys.readouterr().out.strip()
    assert new != old and not Token.objects.filter(key=old).exists()


def test_create_api_token_names_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("create_api_token", "ghost")


def test_create_demo_makes_a_member_who_can_log_in(db: None, capsys: Any) -> None:
    call_command("create_demo", "--password", "a-demo-password-1")
    output = capsys.readouterr().out
    user = authenticate(username="demo", password="a-demo-password-1")
    assert user is not None
    assert Membership.objects.get(user=user).organisation.name == "Demo Clinic"
    assert Token.objects.get(user=user).key in output


def test_create_demo_is_idempotent_and_keeps_the_password(db: None, capsys: Any) -> None:
    call_command("create_demo", "--password", "a-demo-password-1")
    call_command("create_demo")
    assert "unchanged" in capsys.readouterr().out
    assert authenticate(username="demo", password="a-demo-password-1") is not None
