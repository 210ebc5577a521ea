#!/usr/bin/env bash
# Prints the fault suite's summary table from the rows the end-to-end tests wrote (e2e `report`): one row per
# fault or bad input whose test passed. A fault whose test failed has no row, and cargo test says why.
# "lost" counts frames that vanished without being counted anywhere; frames a fault legitimately costs (drops
# behind a stalled broker, damaged data) are named in the fault's text and counted by the binaries.
DIR="${1:-$(dirname "${BASH_SOURCE[0]}")/../target/fault-report}"
shopt -s nullglob
rows=("$DIR"/*.tsv)
[ "${#rows[@]}" -gt 0 ] || { echo "(no fault-suite rows: were the end-to-end tests run?)"; exit 0; }
echo
echo "=== fault suite ==="
cat "${rows[@]}" | sort | awk -F'\t' '
    BEGIN { printf "%-78s %9s %10s %5s %10s  %s\n", "fault", "frames in", "frames out", "lost", "duplicates", "result" }
    { printf "%-78s %9s %10s %5s %10s  %s\n", $1, $2, $3, $4, $5, $6 }'
