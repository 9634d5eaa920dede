#!/usr/bin/env bash
# Runs the matrix-nio end-to-end tests (tests/e2e) against a converge binary, in a venv it creates if missing.
#
# Usage (from anywhere; paths are taken relative to the repository root):
#   bash tests/e2e/run.sh [extra pytest args...]
# Environment:
#   CONVERGE_BIN  binary to test (default: target/debug/converge; it is not built here)
#   E2E_VENV      virtualenv to use/create (default: target/e2e-venv)
#   PYTHON        interpreter used to create the venv (default: python3)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

venv="${E2E_VENV:-$repo_root/target/e2e-venv}"
requirements="$repo_root/tests/e2e/requirements.txt"

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

# Reinstall only when requirements.txt changed since the last successful install.
stamp="$venv/.e2e-requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/e2e "$@"
