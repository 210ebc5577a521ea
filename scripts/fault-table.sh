#!/usr/bin/env bash
# Prints the fault suite's summary table from the rows the end-to-end tests wrote (e2e `Tally::report`): one
# row per fault or bad input whose test passed. A fault whose test failed has no row, and cargo test says why.
# Every figure is read back by the test that reports it (e2e/tests/common/mod.rs, `Tally`):
#   frames in   distinct frames that entered the stage under test: for detect, the messages read back from its
#               input topic (a frame by camera+seq, anything else by partition/offset); for ingest, the count
#               it printed, checked against its topic; for the store, the boxes of the detections on its topic.
#   frames out  frames in with an answer read back: a result on the output topic or a dead letter naming the
#               frame (detect), the frame itself on the frames topic (ingest), its database rows (store).
#   lost        frames in with no answer once the test's bounded wait is over.
#   duplicates  answers beyond the first for one frame (results with the same camera+seq; rows beyond one per box).
# A clear error that must leave Kafka untouched reads its topic back and shows 0 only if it holds nothing.
# Frames a fault legitimately costs (drops behind a stalled broker, damaged data) never reach the topic, so
# they are not "lost": they are named in the fault's text and counted by the binaries.
DIR="${1:-$(dirname "${BASH_SOURCE[0]}")/../target/fault-report}"
shopt -s nullglob
rows=("$DIR"/*.tsv)
[ "${#rows[@]}" -gt 0 ] || { echo "(no fault-suite rows: were the end-to-end tests run?)"; exit 0; }
echo
echo "=== fault suite ==="
cat "${rows[@]}" | sort | awk -F'\t' '
    BEGIN { printf "%-78s %9s %10s %5s %10s  %s\n", "fault", "frames in", "frames out", "lost", "duplicates", "result" }
    { printf "%-78s %9s %10s %5s %10s  %s\n", $1, $2, $3, $4, $5, $6 }'
