#!/usr/bin/env bash
# Starts (or reuses) a local tansu broker for the demo: `scripts/broker.sh start [PORT]`, `scripts/broker.sh stop`.
# Prints the bootstrap address on stdout. Data is in memory: stopping the broker discards it.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DIR="$CACHE/broker"
PIDFILE="$DIR/tansu.pid"
mkdir -p "$DIR"
TANSU="$(command -v tansu || echo "$HOME/.cargo/bin/tansu")"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-start}" in
start)
    if running; then
        cat "$DIR/addr"
        exit 0
    fi
    [ -x "$TANSU" ] || die "tansu not found: run scripts/install-broker.sh (or make setup)"
    port="${2:-$(free_port)}"
    addr="127.0.0.1:$port"
    # tansu reads a .env from its working directory, so it runs in its own empty one.
    cd "$DIR"
    "$TANSU" broker --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
        --storage-engine memory://tansu/ >"$DIR/tansu.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$addr" >"$DIR/addr"
            echo "$addr"
            exit 0
        fi
        running || break
        sleep 0.1
    done
    die "tansu did not start (see $DIR/tansu.log)"
    ;;
stop)
    if running; then kill "$(cat "$PIDFILE")"; fi
    rm -f "$PIDFILE" "$DIR/addr"
    ;;
*) die "usage: $0 start [PORT] | stop" ;;
esac
