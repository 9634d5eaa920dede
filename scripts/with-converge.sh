#!/usr/bin/env bash
# Runs a command against a fresh converge server: a free loopback port, a temporary data
# directory, open registration, no rate limits. The command finds the server in
# $HOMESERVER_URL; the server's log is shown if the command fails.
#
# Usage: scripts/with-converge.sh COMMAND [ARGS...]
# Environment: CONVERGE_BIN, the binary to run (default: target/debug/converge).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${CONVERGE_BIN:-$repo_root/target/debug/converge}"
[ -x "$bin" ] || { echo "with-converge.sh: no converge binary at $bin" >&2; exit 2; }
[ "$#" -gt 0 ] || { echo "usage: with-converge.sh COMMAND [ARGS...]" >&2; exit 2; }

data="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
env -u CONVERGE_BIN CONVERGE_DATA_DIR="$data" CONVERGE_LISTEN="127.0.0.1:$port" CONVERGE_REGISTRATION__MODE=open \
    CONVERGE_RATE_LIMITS__ENABLED=false CONVERGE_LOG_LEVEL="${CONVERGE_LOG_LEVEL:-warn}" \
    "$bin" serve > "$data/server.log" 2>&1 &
server=$!
stop() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$data"
}
trap stop EXIT

for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/_matrix/client/versions" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$data/server.log" >&2; exit 1; }
    sleep 0.1
done

status=0
HOMESERVER_URL="http://127.0.0.1:$port" "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "== converge log" >&2
    tail -n 50 "$data/server.log" >&2
fi
exit "$status"
