#!/usr/bin/env bash
# Runs the matrix-sdk-ui end-to-end tests (tests/e2e-sdk): Element X's engine (SyncService,
# RoomListService, Timeline from matrix-sdk-ui 0.19) against the homeserver at $HOMESERVER_URL,
# over simplified sliding sync (MSC4186).
#
# Usage: HOMESERVER_URL=http://127.0.0.1:8008 tests/e2e-sdk/run.sh [test-binary flags: a name filter, --include-ignored]
#    or: scripts/with-converge.sh bash tests/e2e-sdk/run.sh
# Environment:
#   HOMESERVER_URL  homeserver to test (required; must allow open registration with m.login.dummy
#                   and should not rate-limit, as scripts/with-converge.sh sets up)
#   CARGO           cargo to use (default: cargo)
# The crate is built on its own (not a workspace member) into target/e2e-sdk, from its Cargo.lock.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
: "${HOMESERVER_URL:?set HOMESERVER_URL, e.g. http://127.0.0.1:8008}"
export HOMESERVER_URL
cd "$repo_root"

# matrix-sdk 0.19 declares rust-version 1.96 but builds with the repository's 1.95 toolchain;
# --ignore-rust-version lets cargo try (it changes nothing on 1.96 and later).
CARGO_TARGET_DIR="$repo_root/target/e2e-sdk" exec "${CARGO:-cargo}" test --locked --ignore-rust-version --no-fail-fast \
    --manifest-path tests/e2e-sdk/Cargo.toml -- --test-threads=1 "$@"
