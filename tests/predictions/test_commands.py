from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from knox.models import AuthToken
from rest_framework.test import APIClient

from predictions.models import Membership


def works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/jobs/").status_code == 200


def test_create_api_token_prints_a_new_token_once_and_stores_only_its_hash(
    clinician: Any, capsys: Any
) -> None:
    call_command("create_api_token", clinician.username)
    first = capsys.readouterr().out.strip()
    call_command("create_api_token", clinician.username)
    second = capsys.readouterr().out.strip()
    assert first != second and works(first) and works(second)
    stored = str(list(AuthToken.objects.values()))
    assert first not in stored and second not in stored


def test_create_api_token_rotate_revokes_the_old_token(clinician: Any, capsys: Any) -> None:
    call_command("create_api_token", clinician.username)
    old = capsys.readouterr().out.strip()
    call_command("create_api_token", clinician.username, "--rotate")
    new = capsys.readouterr().out.strip()
    assert new != old and works(new) and not works(old)


def test_create_api_token_names_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("create_api_token", "ghost")


def test_create_demo_makes_a_member_who_can_log_in(db: None, capsys: Any) -> None:
    call_command("create_demo", "--password", "a-demo-password-1")
    output = capsys.readouterr().out
    user = authenticate(username="demo", password="a-demo-password-1")
    assert user is not None
    assert Membership.objects.get(user=user).organisation.name == "Demo Clinic"
    key = output.split("api token: ")[1].strip()
    assert works(key) and AuthToken.objects.filter(user=user).count() == 1


def test_create_demo_is_idempotent_and_keeps_the_password(db: None, capsys: Any) -> None:
    call_command("create_demo", "--password", "a-demo-password-1")
    call_command("create_demo")
    assert "unchanged" in capsys.readouterr().out
    assert authenticate(username="demo", password="a-demo-password-1") is not None
