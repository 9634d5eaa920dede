#!/usr/bin/env bash
# Converge Web's tests: unit tests (vitest), then browser tests (Debian's Chromium through
# playwright-core) against a Converge binary started here with temporary data on free ports.
#
#   CONVERGE_BIN=/path/to/converge web/tests/run.sh                      # everything
#   CONVERGE_BIN=... web/tests/run.sh --test-name-pattern=webhook         # some browser tests
#   WEB_TEST_BIG=1 ...                                                    # also the 100,000-sample chart
#
# Environment: CONVERGE_BIN (default: target/debug/converge, then /tmp/converge-dev), CHROMIUM
# (default /usr/bin/chromium), MQTT_PORT (a Mosquitto broker; default 1883, or one started here if
# `mosquitto` is installed and nothing answers), WEB_TEST_SKIP_UNIT=1, WEB_TEST_SKIP_BUILD=1, WEB_TEST_DEBUG=1 (page errors
# to stderr). Screenshots go to target/web-screenshots/. Needs: node >= 20, chromium, mosquitto-clients.
set -euo pipefail

WEB="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$WEB/.." && pwd)"
cd "$WEB"

BIN="${CONVERGE_BIN:-}"
if [[ -z "$BIN" ]]; then
    for c in "$REPO/target/debug/converge" "$REPO/target/release/converge" /tmp/converge-dev; do
        if [[ -x "$c" ]]; then BIN="$c"; break; fi
    done
fi
[[ -x "$BIN" ]] || { echo "run.sh: no Converge binary: set CONVERGE_BIN" >&2; exit 2; }
# Converge reads every CONVERGE_* variable as configuration: keep ours out of its way.
unset CONVERGE_BIN CONVERGE_URL
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$CHROMIUM" ]] || { echo "run.sh: no Chromium at $CHROMIUM (Debian: apt-get install -y chromium)" >&2; exit 2; }
command -v mosquitto_pub >/dev/null || { echo "run.sh: mosquitto_pub missing (Debian: apt-get install -y mosquitto-clients)" >&2; exit 2; }

# Dependencies: npm ci when node_modules is missing or older than the lock file.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    npm ci --no-audit --no-fund
fi

if [[ -z "${WEB_TEST_SKIP_UNIT:-}" ]]; then
    npx vitest run
fi
# The binary embeds web/dist; scripts/test built and checked it already (WEB_TEST_SKIP_BUILD=1).
if [[ -z "${WEB_TEST_SKIP_BUILD:-}" ]]; then
    npm run build
fi

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

TMP="$(mktemp -d /tmp/converge-web-test.XXXXXX)"
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $status -ne 0 && -f "$TMP/converge.log" ]]; then
        echo "--- last lines of the server's log ($TMP/converge.log)" >&2
        tail -n 30 "$TMP/converge.log" >&2
    else
        rm -rf "$TMP"
    fi
    exit $status
}
trap cleanup EXIT INT TERM

# A broker: the one on MQTT_PORT (default 1883), else our own Mosquitto on a free port.
MQTT_PORT="${MQTT_PORT:-1883}"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null; then
    if command -v mosquitto >/dev/null; then
        MQTT_PORT="$(free_port)"
        mosquitto -p "$MQTT_PORT" >"$TMP/mosquitto.log" 2>&1 &
        PIDS+=($!)
        sleep 0.5
    else
        echo "run.sh: no MQTT broker on 127.0.0.1:$MQTT_PORT and no mosquitto to start" >&2
        exit 2
    fi
fi

PORT="$(free_port)"
export CONVERGE_DATA_DIR="$TMP/data"
export CONVERGE_LISTEN="127.0.0.1:$PORT"
export CONVERGE_REGISTRATION__MODE=token
export CONVERGE_RATE_LIMITS__ENABLED=false
export CONVERGE_GATEWAYS__MQTT__ENABLED=true
export CONVERGE_GATEWAYS__MQTT__URL="mqtt://127.0.0.1:$MQTT_PORT"
export CONVERGE_GATEWAYS__MQTT__CLIENT_ID="converge-webtest-$$"
export CONVERGE_GATEWAYS__MQTT__TOPIC_PREFIX="cwtest$$"
export CONVERGE_GATEWAYS__MQTT__MAX_SAMPLES_PER_DEVICE=200000
mkdir -p "$CONVERGE_DATA_DIR"

ADMIN_USER=admin
ADMIN_PASSWORD="admin-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$BIN" user add "$ADMIN_USER" --password "$ADMIN_PASSWORD" --admin >/dev/null

"$BIN" serve >"$TMP/converge.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/_converge/health" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "http://127.0.0.1:$PORT/_converge/health" >/dev/null || { echo "run.sh: the server did not start" >&2; exit 1; }

# The app: served by the binary itself once it embeds web/dist, else by tests/serve.mjs (same CSP,
# SPA fallback, API passed through) in front of it.
if curl -fs "http://127.0.0.1:$PORT/" 2>/dev/null | grep -q 'id="app"'; then
    WEB_URL="http://127.0.0.1:$PORT"
else
    WEB_PORT="$(free_port)"
    node tests/serve.mjs --dist dist --upstream "http://127.0.0.1:$PORT" --port "$WEB_PORT" >"$TMP/serve.log" 2>&1 &
    PIDS+=($!)
    WEB_URL="http://127.0.0.1:$WEB_PORT"
    for _ in $(seq 1 50); do curl -fs "$WEB_URL/" >/dev/null 2>&1 && break; sleep 0.1; done
fi
echo "run.sh: Converge $BIN on :$PORT, app at $WEB_URL, MQTT on :$MQTT_PORT"

mkdir -p "$REPO/target/web-screenshots"
WEB_URL="$WEB_URL" CONVERGE_URL="http://127.0.0.1:$PORT" ADMIN_USER="$ADMIN_USER" ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    MQTT_PORT="$MQTT_PORT" MQTT_TOPIC_PREFIX="$CONVERGE_GATEWAYS__MQTT__TOPIC_PREFIX" CHROMIUM="$CHROMIUM" \
    SCREENSHOT_DIR="$REPO/target/web-screenshots" \
    node --test --test-force-exit --test-concurrency=1 "$@" tests/*.test.mjs
