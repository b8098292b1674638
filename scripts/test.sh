#!/usr/bin/env bash
# The test command (`make test`): lint, import boundaries, then the whole pytest suite.
# Browser tests need Chromium; installed here when possible, skipped with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/lint-imports" --no-cache

exec "$BIN/python" -m pytest "$@"
