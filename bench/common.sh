# shellcheck shell=bash
# Shared by the benchmarks. Sourced, not run.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$ROOT"

# A scratch directory and the background processes to stop at exit.
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
export FRAMEWIRE_METRICS_LISTEN=off RUST_LOG=warn

# start_broker: a fresh in-memory tansu on a free port for this run; exports FRAMEWIRE_BROKERS. With
# BENCH_BROKERS set, uses that cluster instead (a broker on another machine, off the measured cores).
start_broker() {
    if [ -n "${BENCH_BROKERS:-}" ]; then
        export FRAMEWIRE_BROKERS="$BENCH_BROKERS"
        return
    fi
    local port
    port="$(free_port)"
    start_tansu "$WORK" "$port" memory
    PIDS+=("$TANSU_PID")
    export FRAMEWIRE_BROKERS="127.0.0.1:$port"
}

# build_pipeline: installs what is missing, builds ingest, detect and subscribe in release, and sets BIN
# (where they are, for the benchmark that sources this) and ORT_DYLIB_PATH.
build_pipeline() {
    "$ROOT/scripts/setup.sh" >/dev/null
    log "building release binaries"
    cargo build --release --quiet -p framewire-ingest -p framewire-detect -p framewire-subscribe --bins
    # shellcheck disable=SC2034
    BIN="$ROOT/target/release"
    export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$CACHE/onnxruntime/libonnxruntime.so}"
}
