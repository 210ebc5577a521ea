#!/usr/bin/env bash
# The whole pipeline on a live camera, for latency and memory: a real RTSP camera (GStreamer's test server,
# 640x360 at 25 fps) -> ingest --fps 10 -> detect (1 thread) -> subscribe tail, all on this machine, for
# DURATION seconds (default 150, at least 120). Reports:
#   - latency from capture to the subscriber (p50/p99), with the model's own inference time beside it, the
#     goals (p50 <= inference p50 + 30 ms, p99 <= inference p99 + 60 ms) and the same latency by stage;
#   - each binary's resident memory, sampled every 5 s: peak, and the last minute against the first minute
#     after warm-up (a leak shows as growth; flat is ~1.00x).
#   bench/pipeline.sh ; env DURATION
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION="${DURATION:-150}"
[ "$DURATION" -ge 120 ] || die "DURATION must be at least 120 s"
MODEL="$CACHE/models/ssdlite_mobilenet_v2_coco.onnx"

build_pipeline

start_broker

rtsp_port="$(free_port)"
/usr/bin/python3 "$ROOT/e2e/tests/support/rtsp_server.py" "$rtsp_port" 640x360 25 >"$WORK/rtsp.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$WORK/rtsp.log" 2>/dev/null && break; sleep 0.1; done

FRAMES="bench-frames-$RANDOM" RESULTS="bench-detections-$RANDOM"
"$BIN/detect" --model "$MODEL" --threads 1 --group "bench-$RANDOM" --input-topic "$FRAMES" --output-topic "$RESULTS" \
    >"$WORK/detect.log" 2>&1 &
DETECT=$!; PIDS+=("$DETECT")
"$BIN/subscribe" tail --topic "$RESULTS" --summary-format json >/dev/null 2>"$WORK/tail.err" &
TAIL=$!; PIDS+=("$TAIL")
sleep 3
"$BIN/ingest" --camera bench --fps 10 --topic "$FRAMES" --progress log "rtsp://127.0.0.1:$rtsp_port/cam" \
    >"$WORK/ingest.out" 2>"$WORK/ingest.log" &
INGEST=$!; PIDS+=("$INGEST")

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
log "running for $DURATION s (RSS sampled every 5 s)"
: >"$WORK/rss"
for t in $(seq 5 5 "$DURATION"); do
    sleep 5
    echo "$t $(rss "$INGEST") $(rss "$DETECT") $(rss "$TAIL")" >>"$WORK/rss"
done
kill -TERM "$INGEST"; wait "$INGEST" || true
sleep 3
kill -TERM "$TAIL"; wait "$TAIL" || true
kill -TERM "$DETECT"; wait "$DETECT" || true

SUMMARY=$(summary_json tail "$WORK/tail.err")
P50=$(jq -r '.latency_p50_ms // empty' <<<"$SUMMARY")
P99=$(jq -r '.latency_p99_ms // empty' <<<"$SUMMARY")
INF=$(jq -r '.inference_p50_ms // empty' <<<"$SUMMARY" | awk '{ printf "%.1f", $1 }')
FRAMES_DONE=$(jq '.frames' <<<"$SUMMARY")
# Memory: peak (MiB), and the last minute's mean against the mean of the minute after a 30 s warm-up.
mem() {
    awk -v c="$1" -v d="$DURATION" '
        { if ($c > peak) peak = $c }
        $1 > 30 && $1 <= 90 { a += $c; na++ }
        $1 > d - 60 { b += $c; nb++ }
        END { printf "%.1f | %.1f | %.2fx", peak / 1024, (b / nb) / 1024, (b / nb) / (a / na) }' "$WORK/rss"
}
# stage_table: the tail's per-stage p50/p99, in pipeline order, as table rows.
stage_table() {
    jq -r '.stages[] | "| \(.stage) | \(.p50_ms * 10 | round / 10) | \(.p99_ms * 10 | round / 10) |"' <<<"$SUMMARY"
}
GOAL50=$(awk -v i="$INF" 'BEGIN { printf "%.1f", i + 30 }')
INF99=$(jq -r '.stages[] | select(.stage == "inference") | .p99_ms' <<<"$SUMMARY" | awk '{ printf "%.1f", $1 }')
GOAL99=$(awk -v i="$INF99" 'BEGIN { printf "%.1f", i + 60 }')
verdict() { awk -v v="$1" -v g="$2" 'BEGIN { print (v != "" && v <= g) ? "met" : "NOT met" }'; }
cat <<REPORT

pipeline benchmark ($(nproc) cores, RTSP camera 640x360@25 -> ingest --fps 10 -> detect --threads 1 -> tail, ${DURATION} s, $FRAMES_DONE frames)
| latency, capture -> subscriber | p50 ${P50} ms | p99 ${P99} ms | model inference p50 ${INF} ms, p99 ${INF99} ms |
| goal: p50 <= inference p50 + 30 ms | ${GOAL50} ms | $(verdict "$P50" "$GOAL50") |
| goal: p99 <= inference p99 + 60 ms | ${GOAL99} ms | $(verdict "$P99" "$GOAL99") |

| stage (ms; see proto/src/stages.rs) | p50 | p99 |
|-------------------------------------|-----|-----|
$(stage_table)

| binary    | peak RSS MiB | last-minute RSS MiB | last minute vs minute 1 (flat = 1.00x) |
|-----------|--------------|---------------------|-----------------------------------------|
| ingest    | $(mem 2) |
| detect    | $(mem 3) |
| subscribe | $(mem 4) |
REPORT
