from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.entry_point import ROOT
from workers.env import (
    ConfigError,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_rate,
    env_secret,
)


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("0", False), ("Yes", True)])
def test_env_bool_reads_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, value: bool
) -> None:
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG") is value


def test_env_bool_refuses_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ConfigError, match="FLAG must be a boolean"):
        env_bool("FLAG")


def test_env_int_checks_type_and_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("N", "ten")
    with pytest.raises(ConfigError, match="N must be an integer"):
        env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(ConfigError, match="at least 1"):
        env_int("N", 1, minimum=1)


def test_env_list_splits_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTS", "a.org, b.org,,")
    assert env_list("HOSTS") == ["a.org", "b.org"]


def test_env_secret_reads_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    monkeypatch.setenv("API_SECRET_FILE", str(tmp_path / "secret"))
    assert env_secret("API_SECRET") == "s3cret"


def test_a_required_secret_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"API_SECRET .* must be set"):
        env_secret("API_SECRET")


def test_the_site_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_env_choice_names_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLE", "TPU")
    with pytest.raises(ConfigError, match=r"^ROLE must be one of gpu, cpu, got 'tpu'$"):
        env_choice("ROLE", ("gpu", "cpu"), "gpu")
    monkeypatch.setenv("ROLE", " CPU ")
    assert env_choice("ROLE", ("gpu", "cpu"), "gpu") == "cpu"


def test_the_site_stops_with_one_line_naming_a_malformed_variable() -> None:
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "MAX_UPLOAD_BYTES": "20MB"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "configuration: MAX_UPLOAD_BYTES must be an integer, got '20MB'\n"


def test_env_rate_takes_drf_rates_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_rate("RATE", "100/minute", environ={}) == "100/minute"
    assert env_rate("RATE", "100/minute", environ={"RATE": "5/s"}) == "5/s"
    assert env_rate("RATE", "100/minute", environ={"RATE": "off"}) is None
    for bad in ("100", "0/minute", "ten/minute", "100/fortnight"):
        with pytest.raises(ConfigError, match="RATE must be a rate"):
            env_rate("RATE", "100/minute", environ={"RATE": bad})
