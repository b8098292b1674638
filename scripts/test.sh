#!/usr/bin/env bash
# The test command (`make test`): lint, import boundaries, types, then the whole pytest suite.
# Browser tests need Chromium; installed here when possible, skipped with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# Chromium for the browser tests: installed only on CI (CI=true) or when asked
# (INSTALL_CHROMIUM=1), only as root with apt-get, and never fatal: without it they skip.
if [ ! -x /usr/bin/chromium ] && { [ "${CI:-}" = true ] || [ "${INSTALL_CHROMIUM:-}" = 1 ]; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Chromium for the browser tests..."
    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
        || echo "Could not install Chromium; the browser tests will be skipped."
fi

# CI: docker-compose for tests/ops/test_compose.py. Never fatal: without it those tests skip
# with the reason (check-jsonschema comes with the dev extra).
if [ "${CI:-}" = "true" ] && ! command -v docker-compose >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && apt-get install -y -qq docker-compose; } >/dev/null 2>&1 \
        || echo "CI: could not install docker-compose; its compose checks will skip"
fi

# CI: node and npm validate the KEDA objects of deploy/k8s (tests/ops/test_k8s.py, which
# fails on CI without them). Never fatal here: the test says what is missing.
if [ "${CI:-}" = "true" ] && ! command -v npm >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && apt-get install -y -qq nodejs npm; } >/dev/null 2>&1 \
        || echo "CI: could not install nodejs and npm; the KEDA validation will fail"
fi

# CI: nginx for tests/ops/test_nginx.py (the repository's config in front of gunicorn).
if [ "${CI:-}" = "true" ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && apt-get install -y -qq nginx-light openssl; } >/dev/null 2>&1 \
        || echo "CI: could not install nginx; its tests will skip"
fi

"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/lint-imports" --no-cache
# Configured in pyproject.toml: django-stubs, DRF stubs, --strict flags on ml/ and workers/.
"$BIN/mypy"

exec "$BIN/python" -m pytest "$@"
