#!/usr/bin/env bash
# Runs the same loads against Synapse (SQLite), Converge (embedded SQLite) and Converge
# (PostgreSQL), one after the other on this machine, then writes bench/RESULTS.md.
#
#   bench/compare.sh                  the full run (tens of minutes, most of it Synapse)
#   bench/compare.sh --smoke          tiny sizes, a minute or two
#   bench/compare.sh --only converge  rerun one server (synapse, converge, postgres, crash,
#                                     gateways: webhooks and MQTT through Mosquitto on :1883,
#                                     web: Converge Web in Chromium)
#                                     and rewrite RESULTS.md from the latest run of each
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=""
ONLY="all"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) SMOKE="--smoke" ;;
        --only) ONLY="$2"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
WORK="${BENCH_WORK:-$PWD/target/bench}${SMOKE:+-smoke}"
PG_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
mkdir -p "$WORK"
wanted() { [[ "$ONLY" == "all" || "$ONLY" == "$1" ]]; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "== building Converge (release)"
cargo build --release --locked -p converge -p converge-bench
BENCH="$PWD/target/release/converge-bench"
CONVERGE="$PWD/target/release/converge"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
wait_http() {
    for _ in $(seq 1 120); do
        curl -sf "$1/_matrix/client/versions" >/dev/null && return 0
        sleep 0.5
    done
    echo "server at $1 did not come up" >&2
    return 1
}
run_bench() { # label base pid [extra bench options]
    local out="$WORK/$1.jsonl"
    echo "{\"server\":\"$1\",\"scenario\":\"machine\",\"cores\":$(nproc),\"loadavg_before\":\"$(loadavg)\"}" > "$out"
    "$BENCH" run --base-url "$2" --pid "$3" --label "$1" $SMOKE "${@:4}" >> "$out"
    echo "{\"server\":\"$1\",\"scenario\":\"machine_after\",\"loadavg_after\":\"$(loadavg)\"}" >> "$out"
}

if wanted synapse; then
echo "== Synapse"
SYN="$WORK/synapse"
if [[ ! -x "$WORK/synapse-venv/bin/python" ]]; then
    python3 -m venv "$WORK/synapse-venv"
    "$WORK/synapse-venv/bin/pip" install -q --upgrade pip
    "$WORK/synapse-venv/bin/pip" install -q matrix-synapse
fi
rm -rf "$SYN" && mkdir -p "$SYN"
cat > "$SYN/log.config" <<LOG
version: 1
formatters: {precise: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}
handlers: {file: {class: logging.FileHandler, formatter: precise, filename: $SYN/homeserver.log}}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
LOG
UNLIMITED="{per_second: 1000000, burst_count: 1000000}"
cat > "$SYN/homeserver.yaml" <<YAML
server_name: localhost
pid_file: $SYN/homeserver.pid
listeners:
  - {port: 18448, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false, resources: [{names: [client], compress: false}]}
database: {name: sqlite3, args: {database: $SYN/homeserver.db}}
log_config: $SYN/log.config
media_store_path: $SYN/media
signing_key_path: $SYN/localhost.signing.key
trusted_key_servers: []
suppress_key_server_warning: true
report_stats: false
macaroon_secret_key: bench-macaroon-secret
form_secret: bench-form-secret
registration_shared_secret: bench-registration-secret
enable_registration: true
enable_registration_without_verification: true
bcrypt_rounds: 4
presence: {enabled: true}
rc_message: $UNLIMITED
rc_registration: $UNLIMITED
rc_login: {address: $UNLIMITED, account: $UNLIMITED, failed_attempts: $UNLIMITED}
rc_joins: {local: $UNLIMITED, remote: $UNLIMITED}
rc_joins_per_room: $UNLIMITED
rc_invites: {per_room: $UNLIMITED, per_user: $UNLIMITED, per_issuer: $UNLIMITED}
rc_3pid_validation: $UNLIMITED
rc_admin_redaction: $UNLIMITED
rc_presence: {per_user: $UNLIMITED}
rc_room_creation: $UNLIMITED
experimental_features: {msc3575_enabled: true}
YAML
"$WORK/synapse-venv/bin/python" -m synapse.app.homeserver -c "$SYN/homeserver.yaml" --generate-keys >/dev/null
"$WORK/synapse-venv/bin/python" -m synapse.app.homeserver -c "$SYN/homeserver.yaml" > "$SYN/stdout.log" 2>&1 &
SYN_PID=$!
trap 'kill $SYN_PID 2>/dev/null || true' EXIT
wait_http http://127.0.0.1:18448
run_bench synapse http://127.0.0.1:18448 "$SYN_PID"
kill "$SYN_PID"; wait "$SYN_PID" 2>/dev/null || true
fi

converge_run() { # label database_url [extra bench options]
    local dir="$WORK/converge-$1"
    rm -rf "$dir" && mkdir -p "$dir"
    CONVERGE_DATA_DIR="$dir" CONVERGE_LISTEN=127.0.0.1:18008 CONVERGE_REGISTRATION__MODE=open \
        CONVERGE_RATE_LIMITS__ENABLED=false CONVERGE_DATABASE_URL="$2" CONVERGE_LOG_LEVEL=warn \
        CONVERGE_GATEWAYS__MQTT__ENABLED="${BENCH_MQTT:-false}" \
        CONVERGE_GATEWAYS__MQTT__TOPIC_PREFIX="bench-$$" CONVERGE_GATEWAYS__MQTT__CLIENT_ID="bench-$$" \
        "$CONVERGE" serve 2> "$dir/log" &
    local pid=$!
    wait_http http://127.0.0.1:18008
    sleep 1
    run_bench "$1" http://127.0.0.1:18008 "$pid" "${@:3}"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

if wanted converge; then
    echo "== Converge (SQLite)"
    converge_run converge ""
    "$BENCH" push-cost --label converge > "$WORK/push-cost.jsonl"
fi
if wanted postgres && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "== Converge (PostgreSQL)"
    psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS converge_bench CASCADE; CREATE SCHEMA converge_bench" >/dev/null
    converge_run converge-postgres "$PG_URL?options[search_path]=converge_bench"
fi

if wanted web && command -v node >/dev/null && [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
    echo "== Converge Web in Chromium (against Converge on SQLite)"
    dir="$WORK/converge-web"
    rm -rf "$dir" && mkdir -p "$dir"
    [[ -d web/node_modules ]] || (cd web && npm ci --no-audit --no-fund --loglevel=error)
    CONVERGE_DATA_DIR="$dir" CONVERGE_LISTEN=127.0.0.1:18008 CONVERGE_REGISTRATION__MODE=open \
        CONVERGE_RATE_LIMITS__ENABLED=false CONVERGE_LOG_LEVEL=warn "$CONVERGE" serve 2> "$dir/log" &
    web_pid=$!
    wait_http http://127.0.0.1:18008
    WEB_URL=http://127.0.0.1:18008 CONVERGE_URL=http://127.0.0.1:18008 node web/bench/web-bench.mjs > "$WORK/web.jsonl"
    kill "$web_pid"; wait "$web_pid" 2>/dev/null || true
fi

if wanted gateways; then
    echo "== Converge gateways (webhooks, MQTT through 127.0.0.1:1883)"
    BENCH_MQTT=true converge_run converge-gateways "" --scenarios webhook,mqtt --mqtt-prefix "bench-$$"
    echo "== Converge gateways (MQTT through the embedded broker on 127.0.0.1:18883)"
    CONVERGE_GATEWAYS__MQTT__BROKER__ENABLED=true CONVERGE_GATEWAYS__MQTT__BROKER__LISTEN=127.0.0.1:18883 \
        BENCH_MQTT=true converge_run converge-embedded-broker "" --scenarios mqtt \
        --mqtt-broker 127.0.0.1:18883 --mqtt-prefix "bench-$$"
fi

if wanted crash; then
    echo "== crash check"
    "$BENCH" crash-check --bin "$CONVERGE" > "$WORK/crash.jsonl"
fi

python3 bench/report.py "$WORK"/*.jsonl ${SMOKE:+--smoke} > "${BENCH_REPORT:-bench/RESULTS.md}"
echo "== wrote bench/RESULTS.md"
