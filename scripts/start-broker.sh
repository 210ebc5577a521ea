#!/usr/bin/env bash
# Starts tansu for a caller that manages it itself (the end-to-end tests' `Broker`), through the same
# start_tansu as the demo and the benchmarks: `scripts/start-broker.sh DIR PORT [memory|sqlite]`.
# Once tansu accepts connections it prints one line, "PID TANSU_BINARY" (the process to signal, and the
# binary for `tansu topic create`), then stays until tansu exits, so that the caller's child reaps it, and
# exits with its status. On failure it prints the reason and the end of DIR/tansu.log on stderr.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

{ [ "$#" -ge 2 ] && [ "$#" -le 3 ]; } || die "usage: $0 DIR PORT [memory|sqlite]"
start_tansu "$@"
echo "$TANSU_PID $TANSU"
status=0
wait "$TANSU_PID" || status=$?
exit "$status"
