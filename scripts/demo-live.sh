#!/usr/bin/env bash
# The pipeline kept running, to watch: the sample clip looped as a live camera -> ingest -> Kafka -> detect ->
# Kafka -> subscribe store and subscribe web, until Ctrl-C. Installs what is missing, starts a local broker
# (unless FRAMEWIRE_BROKERS points at one), and prints the page's address and where the logs are.
#   scripts/demo-live.sh [VIDEO]        (make demo-live)
# FRAMEWIRE_WEB_LISTEN: the web view's address (default 127.0.0.1:8080). FRAMEWIRE_DEMO_LIVE_DIR: the logs,
# the database and the snapshots (default .cache/demo-live; the database is kept across runs).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

VIDEO="${1:-$CACHE/media/bikes.mp4}"
CAMERA="$(basename "${VIDEO%.*}")"
LISTEN="${FRAMEWIRE_WEB_LISTEN:-127.0.0.1:8080}"
DIR="${FRAMEWIRE_DEMO_LIVE_DIR:-$CACHE/demo-live}"
DB="sqlite://$DIR/framewire.db"
# A camera is sampled anyway; 10 frames/s keeps detect ahead of the camera on two busy cores.
FPS=10
# How long each process may take to drain, commit and flush after SIGTERM (detect drains for up to 10 s).
STOP_GRACE_S=30

"$ROOT/scripts/setup.sh"
[ -f "$VIDEO" ] || die "$VIDEO not found"
VIDEO="$(realpath "$VIDEO")"
log "building"
cargo build --quiet --bins --workspace
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$CACHE/onnxruntime/libonnxruntime.so}"
mkdir -p "$DIR/broker" "$DIR/snapshots"
# What this run started, one "NAME PID" a line, while it runs (the end-to-end test checks them all stopped).
PIDFILE="$DIR/pids"
: >"$PIDFILE"

declare -A PIDS=()
# Upstream first, so that each stage has had its input's last frames when it is told to stop; the broker last.
STOP_ORDER=(ingest detect store web broker)

log_of() {
    if [ "$1" = broker ]; then echo "$DIR/broker/tansu.log"; else echo "$DIR/$1.log"; fi
}

# stop NAME: SIGTERM, then waits up to STOP_GRACE_S (then SIGKILL); fails if NAME did not stop cleanly.
stop() {
    local name="$1" pid="${PIDS[$1]}" deadline=$((SECONDS + STOP_GRACE_S)) status=0 killed=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$killed" = 0 ] && [ "$SECONDS" -ge "$deadline" ]; then
            printf 'error: %s did not stop within %s s of SIGTERM: killed\n' "$name" "$STOP_GRACE_S" >&2
            kill -KILL "$pid" 2>/dev/null || true
            killed=1
        fi
        sleep 0.1
    done
    wait "$pid" || status=$?
    unset "PIDS[$name]"
    [ "$status" = 0 ] || printf 'error: %s stopped with status %s: %s\n' "$name" "$status" "$(log_tail "$(log_of "$name")")" >&2
    [ "$status" = 0 ]
}

cleanup() {
    local status=$? name
    # A second Ctrl-C must not leave the rest running: each stop is bounded by STOP_GRACE_S anyway.
    trap '' INT TERM
    [ "${#PIDS[@]}" -gt 0 ] || return 0
    log "stopping (each process may take up to $STOP_GRACE_S s)"
    for name in "${STOP_ORDER[@]}"; do
        [ -z "${PIDS[$name]:-}" ] || stop "$name" || status=1
    done
    rm -f "$PIDFILE"
    [ "$status" != 0 ] || log "stopped"
    exit "$status"
}
trap cleanup EXIT
INTERRUPTED=0
# Ctrl-C or SIGTERM is how this demo ends: a success, once everything has stopped cleanly. While a process
# is being started, a signal is only noted, so that none is left running unrecorded.
hold_signals() { trap 'INTERRUPTED=1' INT TERM; }
release_signals() {
    trap 'exit 0' INT TERM
    [ "$INTERRUPTED" = 0 ] || exit 0
}
release_signals

# started NAME PID: records a process this script started.
started() {
    PIDS[$1]=$2
    echo "$1 $2" >>"$PIDFILE"
}

# start NAME COMMAND...: runs COMMAND in the background, logging to $DIR/NAME.log. Each process gets its own
# process group (set -m), so that a terminal's Ctrl-C reaches this script alone, which stops them in
# STOP_ORDER: signalled all at once, the broker could go before the others had committed and flushed.
start() {
    local name="$1"
    shift
    log "starting $name (log: $DIR/$name.log)"
    hold_signals
    set -m
    "$@" >"$DIR/$name.log" 2>&1 </dev/null &
    set +m
    started "$name" $!
    release_signals
}

# check_alive: fails, showing the end of its log, if a process this script started has exited by itself.
check_alive() {
    local name status=0
    for name in "${!PIDS[@]}"; do
        kill -0 "${PIDS[$name]}" 2>/dev/null && continue
        wait "${PIDS[$name]}" || status=$?
        unset "PIDS[$name]"
        die "$name exited (status $status) while the demo was running: $(log_tail "$(log_of "$name")")"
    done
}

STORE_FROM=()
if [ -z "${FRAMEWIRE_BROKERS:-}" ]; then
    # In its own folder and port, so that a `make broker` or `make demo` beside it is left alone.
    port="$(free_port)"
    : >"$DIR/broker/tansu.log"
    hold_signals
    set -m
    start_tansu "$DIR/broker" "$port" memory
    set +m
    started broker "$TANSU_PID"
    release_signals
    FRAMEWIRE_BROKERS="127.0.0.1:$port"
    log "local broker (tansu, in memory) at $FRAMEWIRE_BROKERS (log: $DIR/broker/tansu.log)"
else
    # Someone's Kafka may hold a backlog of detections that this demo did not make.
    STORE_FROM=(--from-latest)
fi
export FRAMEWIRE_BROKERS

start detect "$BIN/detect" --model "$CACHE/models/ssdlite_mobilenet_v2_coco.onnx" --metrics-listen off
start store "$BIN/subscribe" --metrics-listen off store --db "$DB" --snapshot-dir "$DIR/snapshots" \
    --group framewire-demo-live-store "${STORE_FROM[@]}"
start web "$BIN/subscribe" --metrics-listen off web --db "$DB" --listen "$LISTEN"

SCHEME=http
[ -z "${FRAMEWIRE_WEB_TLS_CERT:-}" ] || SCHEME=https
URL="$SCHEME://$LISTEN"
# --insecure: this only asks whether the server answers; the certificate is the browser's to check.
# The token's header comes from a pipe made anew for each try, not an argument: a command line is readable by
# every local user (ps).
probe() {
    curl -fsS -o /dev/null --max-time 2 --insecure -H @<(
        [ -z "${FRAMEWIRE_WEB_TOKEN:-}" ] || printf 'Authorization: Bearer %s\n' "$FRAMEWIRE_WEB_TOKEN"
    ) "$1"
}
deadline=$((SECONDS + 60))
until probe "$URL/api/state" 2>/dev/null; do
    check_alive
    [ "$SECONDS" -lt "$deadline" ] || die "the web view did not answer at $URL within 60 s: $(log_tail "$DIR/web.log")"
    sleep 0.2
done

# The clip, paced at its own speed and opened again at its end like a camera that dropped: a camera that never
# ends. `live` also starts its seq at the current Unix time in ms, so a new run's frames never repeat a stored seq.
# A TOML basic string.
quote() { local s="${1//\\/\\\\}"; printf '"%s"' "${s//\"/\\\"}"; }
cat >"$DIR/cameras.toml" <<EOF
[[camera]]
id = $(quote "$CAMERA")
source = $(quote "$VIDEO")
fps = $FPS
realtime = true
live = true
EOF
# FRAMEWIRE_CAMERA names the demo's camera for scripts/demo.sh, but ingest would read it as a camera of its own.
start ingest env -u FRAMEWIRE_CAMERA "$BIN/ingest" --metrics-listen off --config "$DIR/cameras.toml"

TOKEN_HINT=
[ -z "${FRAMEWIRE_WEB_TOKEN:-}" ] || TOKEN_HINT="?token=<FRAMEWIRE_WEB_TOKEN, percent-encoded>"
cat <<EOF

=== framewire live demo ===
live page:  $URL/$TOKEN_HINT
review:     $URL/review   (stored events, with their snapshots)
camera:     $CAMERA: $VIDEO in a loop at $FPS frames/s, paced like a live camera
store:      $DB, snapshots in $DIR/snapshots
            target/debug/subscribe query --db $DB --events
logs:       $DIR/{ingest,detect,store,web}.log${PIDS[broker]:+, $DIR/broker/tansu.log}
Ctrl-C to stop.
EOF

while true; do
    check_alive
    sleep 1
done
