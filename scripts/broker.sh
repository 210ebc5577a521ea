#!/usr/bin/env bash
# Starts (or reuses) a local tansu broker for the demo: `scripts/broker.sh start [PORT]`, `scripts/broker.sh stop`.
# Prints the bootstrap address on stdout. Data is in memory: stopping the broker discards it.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DIR="$CACHE/broker"
PIDFILE="$DIR/tansu.pid"
mkdir -p "$DIR"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-start}" in
start)
    if running; then
        cat "$DIR/addr"
        exit 0
    fi
    port="${2:-$(free_port)}"
    addr="127.0.0.1:$port"
    # A new broker, a new log (start_tansu appends, for brokers restarted on their own directory).
    : >"$DIR/tansu.log"
    start_tansu "$DIR" "$port" memory
    echo "$TANSU_PID" >"$PIDFILE"
    echo "$addr" >"$DIR/addr"
    echo "$addr"
    ;;
stop)
    if running; then kill "$(cat "$PIDFILE")"; fi
    rm -f "$PIDFILE" "$DIR/addr"
    ;;
*) die "usage: $0 start [PORT] | stop" ;;
esac
