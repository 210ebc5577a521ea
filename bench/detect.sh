#!/usr/bin/env bash
# detect throughput, measured against baselines taken in the same run on the same model:
#   raw ONNX Runtime (a loop over one pre-built tensor)  vs  detect Kafka -> Kafka, at --threads 1 and 2;
#   two replicas with --threads 1 each                    vs  one replica with --threads 1.
# Rates are steady-state frames/s from the first to the last result seen by a subscriber. Ratios, not the
# absolute numbers, are the result: these machines are shared and noisy.
#   bench/detect.sh [FRAMES_PER_CAMERA_FILE=bikes.mp4] ; env CAMERAS (default 4), RAW_SECONDS (default 10)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VIDEO="${1:-$CACHE/media/bikes.mp4}"
CAMERAS="${CAMERAS:-4}"
RAW_SECONDS="${RAW_SECONDS:-10}"
MODEL="$CACHE/models/ssdlite_mobilenet_v2_coco.onnx"

"$ROOT/scripts/setup.sh" >/dev/null
log "building release binaries"
cargo build --release --quiet -p framewire-ingest -p framewire-detect -p framewire-subscribe --bins --examples
BIN="$ROOT/target/release"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$CACHE/onnxruntime/libonnxruntime.so}"

start_broker

INPUT="bench-frames"
for i in $(seq "$CAMERAS"); do
    "$BIN/ingest" --camera "cam$i" --topic "$INPUT" --progress log "$VIDEO" >"$WORK/ingest$i.out"
done
TOTAL=$(awk '{ s += $2 } END { print s }' "$WORK"/ingest*.out)
log "$TOTAL frames from $CAMERAS cameras in $INPUT"

raw() { "$BIN/examples/raw_inference" "$MODEL" "$1" "$RAW_SECONDS" | sed -n 's/^raw_fps=//p'; }

# e2e THREADS REPLICAS: steady-state frames/s of REPLICAS detect processes in one fresh group.
e2e() {
    local run="t$1r$2-$RANDOM" pids=()
    for r in $(seq "$2"); do
        "$BIN/detect" --model "$MODEL" --threads "$1" --group "$run" --instance-id "$run-$r" \
            --input-topic "$INPUT" --output-topic "$run" >"$WORK/$run-$r.log" 2>&1 &
        pids+=($!)
    done
    "$BIN/subscribe" tail --topic "$run" --from-beginning --count "$TOTAL" --idle-exit 120s --summary \
        >/dev/null 2>"$WORK/$run.tail"
    kill "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    sed -n 's/.*; \([0-9.]*\) frames\/s$/\1/p' "$WORK/$run.tail"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

log "raw ONNX Runtime, 1 thread";  RAW1=$(raw 1)
log "detect, 1 thread";            E2E1=$(e2e 1 1)
log "raw ONNX Runtime, 2 threads"; RAW2=$(raw 2)
log "detect, 2 threads";           E2E2=$(e2e 2 1)
log "detect, 2 replicas x 1 thread"; REP2=$(e2e 1 2)

cat <<REPORT

detect benchmark ($(nproc) cores, $TOTAL frames of $(basename "$VIDEO"), $(basename "$MODEL"))
| run                                   | frames/s | ratio                    | goal   |
|---------------------------------------|----------|--------------------------|--------|
| raw ONNX Runtime, --threads 1         | $RAW1 | baseline                 |        |
| detect Kafka -> Kafka, --threads 1    | $E2E1 | $(ratio "$E2E1" "$RAW1")x raw                | >= 0.95 |
| raw ONNX Runtime, --threads 2         | $RAW2 | baseline                 |        |
| detect Kafka -> Kafka, --threads 2    | $E2E2 | $(ratio "$E2E2" "$RAW2")x raw                | >= 0.95 |
| detect, 2 replicas x --threads 1      | $REP2 | $(ratio "$REP2" "$E2E1")x one replica        | >= 1.8 |
REPORT
