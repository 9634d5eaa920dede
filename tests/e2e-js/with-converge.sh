#!/usr/bin/env bash
# Runs the matrix-js-sdk end-to-end tests (run.sh) against a fresh converge server.
#
# Usage: bash tests/e2e-js/with-converge.sh [extra node --test flags]
# Environment: CONVERGE_BIN, the binary to test (default: target/debug/converge).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../../scripts/with-converge.sh" bash "$here/run.sh" "$@"
