#!/usr/bin/env bash
# detect throughput, measured against baselines taken in the same run on the same model:
#   raw ONNX Runtime (a loop over one pre-built tensor)  vs  detect Kafka -> Kafka, at --threads 1 and 2;
#   two replicas with --threads 1 each                    vs  one replica with --threads 1;
#   one replica with --workers 2 --threads 1              vs  one replica with --threads 1, and --threads 2.
# Rates are steady-state frames/s from the first to the last result seen by a subscriber. Ratios, not the
# absolute numbers, are the result: these machines are shared and noisy.
#   bench/detect.sh [FRAMES_PER_CAMERA_FILE=bikes.mp4] ; env CAMERAS (default 4), RAW_SECONDS (default 10),
#   BENCH_BROKERS (a broker elsewhere instead of a local tansu)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VIDEO="${1:-$CACHE/media/bikes.mp4}"
CAMERAS="${CAMERAS:-4}"
RAW_SECONDS="${RAW_SECONDS:-10}"
MODEL="$CACHE/models/ssdlite_mobilenet_v2_coco.onnx"

build_pipeline
cargo build --release --quiet -p framewire-detect --examples

start_broker

INPUT="bench-frames-$RANDOM$RANDOM"
for i in $(seq "$CAMERAS"); do
    "$BIN/ingest" --camera "cam$i" --topic "$INPUT" --progress log --summary-format json "$VIDEO" >"$WORK/ingest$i.json"
done
TOTAL=$(jq -s '[.[].cameras[].published] | add' "$WORK"/ingest*.json)
log "$TOTAL frames from $CAMERAS cameras in $INPUT"

raw() { "$BIN/examples/raw_inference" "$MODEL" "$1" "$RAW_SECONDS" | sed -n 's/^raw_fps=//p'; }

# raw_pair: two raw loops with one thread each, at the same time, frames/s summed: what the machine itself
# gives two single-threaded ONNX Runtime processes, the ceiling for two replicas.
raw_pair() {
    local a b
    "$BIN/examples/raw_inference" "$MODEL" 1 "$RAW_SECONDS" >"$WORK/raw-a" &
    a=$!
    "$BIN/examples/raw_inference" "$MODEL" 1 "$RAW_SECONDS" >"$WORK/raw-b" &
    b=$!
    wait "$a" "$b"
    sed -n 's/^raw_fps=//p' "$WORK/raw-a" "$WORK/raw-b" | awk '{ s += $1 } END { printf "%.1f", s }'
}

# CPU seconds (user + system) a live process has used so far.
cpu_s() { [ -n "$1" ] || { echo 0; return; }; awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Empty with BENCH_BROKERS: the broker is not on this machine, and its CPU reads as 0.
BROKER_PID="${PIDS[0]:-}"

# e2e THREADS REPLICAS [WORKERS]: steady-state frames/s of REPLICAS detect processes (each with WORKERS model
# sessions, default 1) in one fresh group. Also records,
# in $WORK/cpu.NAME, the CPU milliseconds per frame spent by detect, the broker and the subscriber: on a
# machine that runs all three, that is where the cores inference wanted went.
e2e() {
    local run="t$1r$2w${3:-1}-$RANDOM" pids=() broker0 detect_cpu=0 sub_cpu
    broker0=$(cpu_s "$BROKER_PID")
    for r in $(seq "$2"); do
        "$BIN/detect" --model "$MODEL" --threads "$1" --workers "${3:-1}" --group "$run" --instance-id "$run-$r" \
            --input-topic "$INPUT" --output-topic "$run" >"$WORK/$run-$r.log" 2>&1 &
        pids+=($!)
    done
    sub_cpu=$( ( "$BIN/subscribe" tail --topic "$run" --from-beginning --count "$TOTAL" --idle-exit 120s \
        --summary-format json >/dev/null 2>"$WORK/$run.tail"; times ) | awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }')
    for p in "${pids[@]}"; do detect_cpu=$(awk -v a="$detect_cpu" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }'); done
    awk -v f="$TOTAL" -v d="$detect_cpu" -v b="$(cpu_s "$BROKER_PID")" -v b0="$broker0" -v s="$sub_cpu" \
        'BEGIN { printf "detect %.2f, broker %.2f, subscriber %.2f", 1000 * d / f, 1000 * (b - b0) / f, 1000 * s / f }' \
        >"$WORK/cpu.$1.$2.${3:-1}"
    kill "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    summary_json tail "$WORK/$run.tail" | jq -r '.frames_per_s // empty' | awk '{ printf "%.1f\n", $1 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

log "raw ONNX Runtime, 1 thread";  RAW1=$(raw 1)
log "detect, 1 thread";            E2E1=$(e2e 1 1)
log "raw ONNX Runtime, 2 threads"; RAW2=$(raw 2)
log "detect, 2 threads";           E2E2=$(e2e 2 1)
log "raw ONNX Runtime, 2 processes x 1 thread at once"; RAWP=$(raw_pair)
log "detect, 2 replicas x 1 thread"; REP2=$(e2e 1 2)
log "detect, 1 replica, 2 workers x 1 thread"; WRK2=$(e2e 1 1 2)

cat <<REPORT

detect benchmark ($(nproc) cores, $TOTAL frames of $(basename "$VIDEO"), $(basename "$MODEL"))
| run                                   | frames/s | ratio                    | goal   |
|---------------------------------------|----------|--------------------------|--------|
| raw ONNX Runtime, --threads 1         | $RAW1 | baseline                 |        |
| detect Kafka -> Kafka, --threads 1    | $E2E1 | $(ratio "$E2E1" "$RAW1")x raw                | >= 0.95 |
| raw ONNX Runtime, --threads 2         | $RAW2 | baseline                 |        |
| detect Kafka -> Kafka, --threads 2    | $E2E2 | $(ratio "$E2E2" "$RAW2")x raw                | >= 0.95 |
| raw ONNX Runtime, 2 processes x 1     | $RAWP | $(ratio "$RAWP" "$RAW1")x one raw process    | ceiling |
| detect, 2 replicas x --threads 1      | $REP2 | $(ratio "$REP2" "$E2E1")x one replica        | >= 1.8 |
| detect, --workers 2 --threads 1       | $WRK2 | $(ratio "$WRK2" "$E2E1")x one worker         | >= 1.5 |
| (same, against --threads 2)           | $WRK2 | $(ratio "$WRK2" "$E2E2")x --threads 2        | > 1.0  |
CPU ms per frame (detect incl. JPEG decode and preprocessing; broker and subscriber run on the same cores):
  --threads 1:             $(cat "$WORK/cpu.1.1.1")
  --threads 2:             $(cat "$WORK/cpu.2.1.1")
  2 replicas x --threads 1: $(cat "$WORK/cpu.1.2.1")
  --workers 2 --threads 1:  $(cat "$WORK/cpu.1.1.2")
REPORT
