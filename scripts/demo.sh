#!/usr/bin/env bash
# The main job, end to end: sample video -> ingest -> Kafka -> detect -> Kafka -> subscribe tail and store.
# Installs what is missing, starts a local broker (unless FRAMEWIRE_BROKERS points at one), and prints a summary.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

VIDEO="${1:-$CACHE/media/bikes.mp4}"
CAMERA="${FRAMEWIRE_CAMERA:-$(basename "${VIDEO%.*}")}"

"$ROOT/scripts/setup.sh"
log "building"
cargo build --quiet --bins --workspace
BIN="$ROOT/target/debug"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$CACHE/onnxruntime/libonnxruntime.so}"

OWN_BROKER=0
if [ -z "${FRAMEWIRE_BROKERS:-}" ]; then
    "$ROOT/scripts/broker.sh" stop
    FRAMEWIRE_BROKERS="$("$ROOT/scripts/broker.sh" start)"
    OWN_BROKER=1
    log "local broker (tansu, in memory) at $FRAMEWIRE_BROKERS"
fi
export FRAMEWIRE_BROKERS

LOGS="$CACHE/demo"
mkdir -p "$LOGS"
DETECT_PID=
cleanup() {
    [ -n "$DETECT_PID" ] && kill "$DETECT_PID" 2>/dev/null && wait "$DETECT_PID" 2>/dev/null
    [ "$OWN_BROKER" = 1 ] && "$ROOT/scripts/broker.sh" stop
    return 0
}
trap cleanup EXIT

log "starting detect (log: $LOGS/detect.log)"
"$BIN/detect" --model "$CACHE/models/ssdlite_mobilenet_v2_coco.onnx" --metrics-listen 127.0.0.1:0 \
    >"$LOGS/detect.log" 2>&1 &
DETECT_PID=$!

log "streaming $VIDEO as camera $CAMERA"
START=$(date +%s.%N)
"$BIN/ingest" --camera "$CAMERA" --metrics-listen off --summary-format json "$VIDEO" >"$LOGS/ingest.json"
INGESTED=$(summary_json ingest "$LOGS/ingest.json")
# ingest's own words for each camera, as its text summary puts them.
jq -r '.elapsed_s as $s | .cameras[] | [.camera, .published, .decoded, .dropped, .reconnects, .skipped, .damaged, $s] | @tsv' \
    <<<"$INGESTED" | awk -F'\t' '{
        secs = $8 > 0.001 ? $8 : 0.001
        detail = $3 " decoded"
        split("dropped|reconnects|files skipped|lost to damaged data", what, "|")
        for (i = 4; i <= 7; i++) if ($i > 0) detail = detail ", " $i " " what[i - 3]
        printf "published %d frames of camera %s (%s) in %.1f s, %.1f frames/s\n", $2, $1, detail, secs, $2 / secs
    }'
FRAMES_IN=$(jq '[.cameras[].published] | add' <<<"$INGESTED")

log "detections (subscribe tail)"
"$BIN/subscribe" --metrics-listen off tail --from-beginning --count "$FRAMES_IN" --idle-exit 60s --summary-format json \
    2>"$LOGS/tail.err"
END=$(date +%s.%N)
grep -v '^{"summary":"tail"' "$LOGS/tail.err" >&2 || true

log "storing the detections (subscribe store: SQLite, snapshots of people, events)"
rm -rf "$LOGS/framewire.db"* "$LOGS/snapshots"
"$BIN/subscribe" --metrics-listen off store --db "sqlite://$LOGS/framewire.db" --snapshot-dir "$LOGS/snapshots" \
    --group "framewire-demo-store-$$" --idle-exit 5s 2>"$LOGS/store.err" || die "store failed (see $LOGS/store.err)"
STORED=$(tail -n 1 "$LOGS/store.err")
EVENTS=$("$BIN/subscribe" query --db "sqlite://$LOGS/framewire.db" --events --limit 1000 | wc -l)

TAILED=$(summary_json tail "$LOGS/tail.err")
DETECTED=$(jq '.frames' <<<"$TAILED")
LABELS=$(jq -r '[.top_labels[] | "\(.label) \(.count)"] | join(", ")' <<<"$TAILED")
LATENCY=$(jq -r '[.latency_p50_ms, .latency_p99_ms, .inference_p50_ms] | select(all(. != null)) | @tsv' <<<"$TAILED" |
    awk -F'\t' '{ printf "p50 %d ms, p99 %d ms (inference p50 %.1f ms)", $1, $2, $3 }')
echo
echo "=== framewire demo summary ==="
echo "frames in:       $FRAMES_IN (camera $CAMERA)"
echo "frames detected: ${DETECTED:-0}"
echo "top labels:      ${LABELS:-none}"
# The file is read at full speed, faster than detect: frames wait in Kafka, which is what this latency shows.
echo "latency:         ${LATENCY:-n/a}, capture to subscriber (file read at full speed, not paced)"
echo "store:           $STORED"
echo "                 $EVENTS events; list them: target/debug/subscribe query --db sqlite://$LOGS/framewire.db --events"
echo "                 snapshots in $LOGS/snapshots; an event and its snapshots: target/debug/subscribe show ID --db sqlite://$LOGS/framewire.db --out DIR"
awk -v n="${DETECTED:-0}" -v s="$START" -v e="$END" 'BEGIN { printf "throughput:      %.1f frames/s end to end (%.1f s)\n", n / (e - s), e - s }'
# The broker this demo started stops with it: watching needs the pipeline kept running.
echo "watch it live:   make demo-live (the clip as a live camera, the web view on http://${FRAMEWIRE_WEB_LISTEN:-127.0.0.1:8080}/, until Ctrl-C)"
[ "${DETECTED:-0}" = "$FRAMES_IN" ] || die "only ${DETECTED:-0} of $FRAMES_IN frames were detected (see $LOGS/detect.log)"
