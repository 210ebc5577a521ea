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
