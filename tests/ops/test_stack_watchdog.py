"""`webapp.stack_watchdog`: when the launcher's pipe closes, it stops the groups still listed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import wait_for
from tests.stack import processes_in_groups
from webapp.stack_watchdog import watched_groups

ROOT = Path(__file__).resolve().parents[2]


def group(command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", command], start_new_session=True)


def test_it_keeps_the_groups_started_and_not_yet_stopped() -> None:
    assert watched_groups(["+10\n", "+11\n", "-10\n", "junk\n", "+12"]) == {11, 12}


def test_when_the_pipe_closes_it_stops_what_was_left_and_kills_what_ignores_sigterm() -> None:
    polite = group("import time; time.sleep(120)")
    stubborn = group("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                     "time.sleep(120)")  # fmt: skip
    stopped = group("pass")
    stopped.wait()
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "webapp.stack_watchdog", "1.0"], cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = watchdog.communicate(
            f"+{polite.pid}\n+{stubborn.pid}\n+{stopped.pid}\n-{stopped.pid}\n", timeout=30
        )
        assert watchdog.returncode == 0
        assert polite.wait(timeout=10) == -15  # SIGTERM first
        assert stubborn.wait(timeout=10) == -9  # SIGKILL after the grace period
        assert "stopping the 2 service(s) it left running" in output
        wait_for(lambda: not processes_in_groups({polite.pid, stubborn.pid}), 10, "no one left")
    finally:
        for process in (polite, stubborn, watchdog):
            process.kill()
            process.wait()


def test_after_a_clean_stop_it_exits_quietly() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webapp.stack_watchdog", "1.0"], cwd=ROOT,
        input="+999999\n-999999\n", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == ""
