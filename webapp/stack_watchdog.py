"""Stop `make run`'s services when the launcher dies without stopping them (even by SIGKILL).

`webapp.runstack` starts this in a session of its own and writes `+PGID` for each
service it starts and `-PGID` for each it has stopped and reaped, one a line, on our
standard input. The launcher's end, however it comes, closes that pipe: then every
group still listed gets one SIGTERM to its leader (gunicorn's workers must not get a
second signal), and after `grace_s` seconds SIGKILL for whatever is left in it.

    python -m webapp.stack_watchdog GRACE_S
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable


def main(grace_s: float, lines: Iterable[str]) -> int:
    groups = watched_groups(lines)
    alive = [group for group in groups if group_alive(group)]
    if not alive:
        return 0  # the launcher stopped everything itself
    say(f"the launcher is gone; stopping the {len(alive)} service(s) it left running")
    for group in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(group_alive(group) for group in alive) and time.monotonic() < deadline:
        time.sleep(0.1)
    for group in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    say("stopped")
    return 0


def watched_groups(lines: Iterable[str]) -> set[int]:
    """Read `+PGID` / `-PGID` lines until the end of input; return the groups still running."""
    groups: set[int] = set()
    for line in lines:
        sign, number = line[:1], line[1:].strip()
        if number.isdigit():
            (groups.add if sign == "+" else groups.discard)(int(number))
    return groups


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def say(message: str) -> None:
    print(f"[runstack watchdog] {message}", flush=True)


if __name__ == "__main__":
    # A Ctrl-C in the terminal is the launcher's business; ours is its disappearance.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(main(float(sys.argv[1]), sys.stdin))
