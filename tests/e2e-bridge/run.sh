#!/usr/bin/env bash
# Runs the appservice (bridge) end-to-end tests in tests/e2e-bridge: a real mautrix appservice and matrix-nio against a converge binary, in a venv made here if missing.
#
# Usage (from anywhere; paths are taken relative to the repository root):
#   bash tests/e2e-bridge/run.sh [extra pytest args...]
# Environment:
#   CONVERGE_BIN     binary to test (default: target/debug/converge; it is not built here)
#   E2E_BRIDGE_VENV  virtualenv to use or create (default: target/e2e-bridge-venv)
#   PYTHON           interpreter that creates the venv (default: python3)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

venv="${E2E_BRIDGE_VENV:-$repo_root/target/e2e-bridge-venv}"
requirements="$repo_root/tests/e2e-bridge/requirements.txt"

bin="${CONVERGE_BIN:-target/debug/converge}"
case "$bin" in
  /*) ;;
  *) bin="$repo_root/$bin" ;;
esac
if [ ! -x "$bin" ]; then
  echo "run.sh: converge binary not found or not executable: $bin (build it or set CONVERGE_BIN)" >&2
  exit 2
fi
export CONVERGE_BIN="$bin"

if [ ! -x "$venv/bin/python" ]; then
  echo "run.sh: creating virtualenv $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
fi

# Install again only when requirements.txt changed since the last successful install.
stamp="$venv/.e2e-bridge-requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/e2e-bridge "$@"
