#!/usr/bin/env bash
# Starts tansu for a caller that manages it itself (the end-to-end tests' `Broker` and `SecuredBroker`), through
# the same start_tansu as the demo and the benchmarks:
#   scripts/start-broker.sh DIR PORT [memory|sqlite [--user NAME] [--tls TLSPORT CERT KEY]]
# (a secured broker: see start_tansu; the user's password comes in TANSU_USER_PASSWORD, never as an argument).
# Once the broker accepts connections it prints one line, "PID TANSU_BINARY" (the process to signal, and the
# binary for tansu's own CLI), then stays until tansu exits, so that the caller's child reaps it, stops the
# stunnel in front of it, if any, and exits with tansu's status. On failure it prints the reason and the end
# of DIR/tansu.log (or DIR/stunnel.log) on stderr.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ "$#" -ge 2 ] || die "usage: $0 DIR PORT [memory|sqlite [--user NAME] [--tls TLSPORT CERT KEY]]"
STUNNEL_PID=""
start_tansu "$@"
echo "$TANSU_PID $TANSU"
status=0
wait "$TANSU_PID" || status=$?
if [ -n "$STUNNEL_PID" ]; then
    kill "$STUNNEL_PID" 2>/dev/null || true
    wait "$STUNNEL_PID" 2>/dev/null || true
fi
exit "$status"
