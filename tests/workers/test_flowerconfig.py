"""workers/flowerconfig.py, executed as Flower executes it: bad values stop it with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.entry_point import ROOT

CONFIG = ROOT / "workers" / "flowerconfig.py"


def execute_config(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    code = f"exec(compile(open({str(CONFIG)!r}).read(), 'flowerconfig', 'exec'), {{}})"
    return subprocess.run(
        [sys.executable, "-c", code],
        env=base | {"PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "flower: set FLOWER_BASIC_AUTH=user:password"),
        ({"FLOWER_MAX_TASKS": "lots"}, "flower: FLOWER_MAX_TASKS must be an integer, got 'lots'"),
        ({"FLOWER_INSPECT_TIMEOUT": "3s"}, "flower: FLOWER_INSPECT_TIMEOUT must be a number"),
    ],
)
def test_a_bad_setting_stops_flower_with_one_line(env: dict[str, str], message: str) -> None:
    auth = {} if not env else {"FLOWER_BASIC_AUTH": "ops:secret"}
    done = execute_config(**auth, **env)
    assert done.returncode != 0
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1  # no traceback


@pytest.mark.parametrize("auth", ["ops:", ":", "ops", ":secret", "ops:secret,viewer:", ","])
def test_a_basic_auth_pair_without_a_user_or_password_stops_flower(auth: str) -> None:
    done = execute_config(FLOWER_BASIC_AUTH=auth)
    assert done.returncode != 0
    assert done.stderr.startswith("flower: FLOWER_BASIC_AUTH must be user:password pairs")
    assert len(done.stderr.strip().splitlines()) == 1  # no traceback
    assert "secret" not in done.stderr  # the message never repeats a password


def test_several_basic_auth_pairs_pass() -> None:
    done = execute_config(FLOWER_BASIC_AUTH="ops:secret,viewer:other")
    assert (done.returncode, done.stderr) == (0, "")


def test_good_settings_pass() -> None:
    done = execute_config(FLOWER_BASIC_AUTH="ops:secret", FLOWER_MAX_TASKS="500")
    assert (done.returncode, done.stderr) == (0, "")
