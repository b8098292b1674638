"""Typed readers for deployment settings, shared by the site, the workers and Flower's config.

Every value comes from the environment, and a malformed one fails at start with a
`ConfigError` whose one-line message names the variable, rather than at the first
request or task. Standard library only: the site imports it too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

N = TypeVar("N", int, float)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A variable is missing or malformed; the message names it."""


def env_str(name: str, default: str = "", environ: Mapping[str, str] = os.environ) -> str:
    """Return the value of `name`, stripped; `default` when unset or blank."""
    return environ.get(name, "").strip() or default


def env_bool(name: str, default: bool = False, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(
    name: str, default: int, minimum: int | None = None, environ: Mapping[str, str] = os.environ
) -> int:
    return _number(name, default, int, "an integer", minimum, environ)


def env_float(
    name: str, default: float, minimum: float | None = None, environ: Mapping[str, str] = os.environ
) -> float:
    return _number(name, default, float, "a number", minimum, environ)


def _number(
    name: str,
    default: N,
    parse: Callable[[str], N],
    kind: str,
    minimum: N | None,
    environ: Mapping[str, str],
) -> N:
    raw = environ.get(name, "")
    if not raw.strip():
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(
    name: str, default: Sequence[str] = (), environ: Mapping[str, str] = os.environ
) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_basic_auth(name: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Return the `user:password` pairs in `name` (comma-separated); [] when unset.

    Every pair needs a user and a password: an empty password would let anyone in who
    knows (or guesses) the user name. The message never repeats a value.
    """
    raw = env_str(name, environ=environ)
    if not raw:
        return []
    pairs = [pair.strip() for pair in raw.split(",")]
    for number, pair in enumerate(pairs, start=1):
        user, colon, password = pair.partition(":")
        if not (colon and user.strip() and password):
            raise ConfigError(
                f"{name} must be user:password pairs, each with a user and a non-empty "
                f"password (pair {number} of {len(pairs)} is not)"
            )
    return pairs


_RATE_UNITS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def env_rate(name: str, default: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """Return a request rate such as `100/minute` (DRF's syntax); None for `off`."""
    value = env_str(name, default, environ).lower()
    if value == "off":
        return None
    count, slash, unit = value.partition("/")
    if not (slash and count.isdigit() and int(count) > 0 and unit in _RATE_UNITS):
        raise ConfigError(f"{name} must be a rate such as 100/minute, or off; got {value!r}")
    return value


def env_choice(
    name: str, choices: Sequence[str], default: str, environ: Mapping[str, str] = os.environ
) -> str:
    """Return the value of `name` (lower-cased) if it is one of `choices`."""
    value = env_str(name, default, environ).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_secret(name: str, required: bool = True, environ: Mapping[str, str] = os.environ) -> str:
    """Return the secret in `name`, or the contents of the file named in `name_FILE`.

    The file form keeps Docker secrets out of `docker compose config` output.
    """
    if file_name := environ.get(f"{name}_FILE"):
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    value = environ.get(name, "")
    if required and not value:
        raise ConfigError(f"{name} (or {name}_FILE) must be set")
    return value
