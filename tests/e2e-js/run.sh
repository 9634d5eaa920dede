#!/usr/bin/env bash
# Runs the matrix-js-sdk end-to-end tests (tests/e2e-js) against the homeserver at $HOMESERVER_URL.
#
# Usage: HOMESERVER_URL=http://127.0.0.1:8008 tests/e2e-js/run.sh [extra node --test flags, e.g. --test-name-pattern=nio]
# Environment:
#   HOMESERVER_URL      homeserver to test (required; must allow registration, see README.md)
#   REGISTRATION_TOKEN  token for the m.login.registration_token stage, if the server asks for one
#   E2E_VENV            Python venv for the matrix-nio peer (default: target/e2e-js-venv; created if missing)
#   PYTHON              interpreter used to create that venv (default: python3)
#   E2E_REQUEST_LOG     if set, every request the tests make is appended there as "<source> METHOD /path/pattern"
#   E2E_DEBUG           if set, the SDK's own debug/info/warn logging is shown
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
: "${HOMESERVER_URL:?set HOMESERVER_URL, e.g. http://127.0.0.1:8008}"
export HOMESERVER_URL
cd "$here"

# npm ci when node_modules is missing or was installed from another package-lock.json.
if ! cmp -s package-lock.json node_modules/.e2e-package-lock.json 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.e2e-package-lock.json
fi

venv="${E2E_VENV:-$repo_root/target/e2e-js-venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "run.sh: creating virtualenv $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
fi
if ! cmp -s requirements.txt "$venv/.e2e-js-requirements" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$venv/.e2e-js-requirements"
fi
export E2E_VENV_PYTHON="$venv/bin/python"

# --test-force-exit: the SDK leaves up-to-110 s abort timers behind its HTTP requests even after stopClient().
exec node --test --test-force-exit --test-concurrency=1 "$@" sdk.test.mjs nio-interop.test.mjs
