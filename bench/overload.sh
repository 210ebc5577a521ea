#!/usr/bin/env bash
# detect under overload: live cameras sending about twice what one detect (1 thread) can process, for
# DURATION s, once as today (every frame, in order) and once with --max-frame-age. Reports, per 10 s of the
# run, results received and their capture -> subscriber latency (p50/p99), and whether every camera kept
# getting results. Without the limit the latency grows with the backlog; with it, it should stay within the
# limit plus the model's time.
#   Cameras: the sample clip looped at its native 25 fps as live cameras (realtime, live), as many as make
#   twice the model's raw single-thread rate measured first in the same run.
#   bench/overload.sh ; env DURATION (default 60), MAX_AGE (default 1s)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION="${DURATION:-60}" MAX_AGE="${MAX_AGE:-1s}"
MODEL="$CACHE/models/ssdlite_mobilenet_v2_coco.onnx"
VIDEO="$CACHE/media/bikes.mp4"

build_pipeline
cargo build --release --quiet -p framewire-detect --examples

log "measuring the model's raw rate (1 thread, 5 s)"
RAW=$("$BIN/examples/raw_inference" "$MODEL" 1 5 | sed -n 's/^raw_fps=//p')
CAMERAS=$(awk -v r="$RAW" 'BEGIN { c = int(2 * r / 25 + 0.999); print (c < 2 ? 2 : c) }')
: >"$WORK/cameras.toml"
for i in $(seq "$CAMERAS"); do
    printf '[[camera]]\nid = "cam%s"\nsource = "%s"\nrealtime = true\nlive = true\n\n' "$i" "$VIDEO" >>"$WORK/cameras.toml"
done
log "raw rate $RAW frames/s: $CAMERAS cameras at 25 fps"

start_broker

# run MODE [DETECT FLAGS...]: detect and a tail first, then the cameras for DURATION s. Each result line of
# the tail is stamped with its arrival time (Unix seconds) in $WORK/MODE.jsonl.
run() {
    local mode="$1" frames="bench-overload-$1-$RANDOM" results="bench-overload-$1-results-$RANDOM" detect tail ingest stamp
    shift
    "$BIN/detect" --model "$MODEL" --threads 1 --group "bench-$mode-$RANDOM" --input-topic "$frames" \
        --output-topic "$results" "$@" >"$WORK/$mode.detect.log" 2>&1 &
    detect=$!
    PIDS+=("$detect")
    mkfifo "$WORK/$mode.fifo"
    while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done <"$WORK/$mode.fifo" >"$WORK/$mode.jsonl" &
    stamp=$!
    "$BIN/subscribe" tail --topic "$results" --json >"$WORK/$mode.fifo" 2>"$WORK/$mode.tail.log" &
    tail=$!
    PIDS+=("$tail")
    sleep 5
    date +%s.%N >"$WORK/$mode.start"
    "$BIN/ingest" --config "$WORK/cameras.toml" --topic "$frames" --progress log --summary-format json \
        >"$WORK/$mode.ingest" 2>"$WORK/$mode.ingest.log" &
    ingest=$!
    PIDS+=("$ingest")
    sleep "$DURATION"
    kill -INT "$ingest"
    wait "$ingest" || true
    sleep 2
    kill "$detect"
    wait "$detect" 2>/dev/null || true
    kill "$tail"
    wait "$tail" "$stamp" 2>/dev/null || true
}

log "as today: every frame, in order ($DURATION s)"; run all
log "with --max-frame-age $MAX_AGE ($DURATION s)"; run fresh --max-frame-age "$MAX_AGE"

python3 - "$WORK" "$DURATION" "$MAX_AGE" "$CAMERAS" <<'PY'
import json, math, re, sys
work, duration, max_age, cameras = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
limit_ms = float(re.match(r"[\d.]+", max_age).group()) * (1 if max_age.endswith("ms") else 1000)

def q(v, p):
    v = sorted(v)
    return v[max(0, math.ceil(p * len(v)) - 1)] if v else float("nan")

def load(mode):
    start = float(open(f"{work}/{mode}.start").read())
    rows = []
    for line in open(f"{work}/{mode}.jsonl"):
        at, _, doc = line.partition(" ")
        if doc.startswith("{"):
            r = json.loads(doc)
            rows.append((float(at) - start, float(at) * 1000 - r["capture_ms"], r))
    published = json.load(open(f"{work}/{mode}.ingest"))["cameras"]
    return rows, sum(c["published"] for c in published)

runs = {m: load(m) for m in ("all", "fresh")}
print(f"\noverload benchmark ({cameras} live cameras at 25 fps -> detect --threads 1 -> tail, {duration:g} s each)")
print("| window s | as today: results | p50 ms | p99 ms | --max-frame-age " + max_age +
      ": results | skipped | p50 ms | p99 ms | cameras with results |")
print("|---|---|---|---|---|---|---|---|---|")
for w in range(0, int(duration), 10):
    cells = []
    for m in ("all", "fresh"):
        rows = [r for r in runs[m][0] if w <= r[0] < w + 10]
        done = [lat for _, lat, r in rows if "skipped" not in r]
        cells.append((len(done), sum("skipped" in r for _, _, r in rows), q(done, 0.5), q(done, 0.99),
                      len({r["camera"] for _, _, r in rows if "skipped" not in r})))
    a, f = cells
    print(f"| {w}-{w + 10} | {a[0]} | {a[2]:.0f} | {a[3]:.0f} | {f[0]} | {f[1]} | {f[2]:.0f} | {f[3]:.0f} | {f[4]}/{cameras} |")

for m, name in (("all", "as today"), ("fresh", f"--max-frame-age {max_age}")):
    rows, published = runs[m]
    done = [lat for t, lat, r in rows if "skipped" not in r and t < duration]
    skipped = sum("skipped" in r for _, _, r in rows)
    print(f"{name}: {published} frames published ({published / duration:.0f}/s), {len(done)} results "
          f"({len(done) / duration:.0f}/s), {skipped} skipped as stale; latency p50 {q(done, 0.5):.0f} ms, p99 {q(done, 0.99):.0f} ms")

rows = runs["fresh"][0]
inference_p99 = q([r["inference_ms"] for _, _, r in rows if "skipped" not in r], 0.99)
done = [lat for t, lat, r in rows if "skipped" not in r and t < duration]
goal = limit_ms + inference_p99
first_half = [lat for t, lat, r in runs["all"][0] if "skipped" not in r and t < duration / 2]
second_half = [lat for t, lat, r in runs["all"][0] if "skipped" not in r and t >= duration / 2 and t < duration]
starved = [w for w in range(0, int(duration), 10)
           if len({r["camera"] for t, _, r in rows if w <= t < w + 10 and "skipped" not in r}) < cameras]
print(f"goal: with the limit, p99 {q(done, 0.99):.0f} ms <= {limit_ms:.0f} ms + inference p99 {inference_p99:.1f} ms: "
      f"{'met' if q(done, 0.99) <= goal else 'NOT met'}; every camera has results in every 10 s: "
      f"{'yes' if not starved else 'no, windows ' + str(starved)}")
print(f"as today the latency grows: p50 {q(first_half, 0.5):.0f} ms in the first half, {q(second_half, 0.5):.0f} ms in the second")
PY
