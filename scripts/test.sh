#!/usr/bin/env bash
# The test command (`make test`): lint, import boundaries, then the whole pytest suite.
# Browser tests need Chromium; installed here when possible, skipped with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# CI: the compose validators for tests/ops/test_compose.py. Never fatal: without them
# those tests skip with the reason.
if [ "${CI:-}" = "true" ]; then
    if ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null; then
        { apt-get update -qq && apt-get install -y -qq docker-compose; } >/dev/null 2>&1 \
            || echo "CI: could not install docker-compose; its compose checks will skip"
    fi
    "$BIN/pip" install --quiet "check-jsonschema==0.39.0" >/dev/null 2>&1 \
        || echo "CI: could not install check-jsonschema; the Compose spec check will skip"
fi

"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/lint-imports" --no-cache

exec "$BIN/python" -m pytest "$@"
