#!/usr/bin/env bash
# Motion gating on a clip that is mostly a still scene: frames published, CPU spent and what is still
# detected, with `ingest --motion` against without it, in the same run on the same clip.
#   The clip (built here from the shared bikes.mp4): CYCLES times a still stretch of STATIC s (one frame of the
#   clip held, with sensor noise and a slow light drift, as a camera sees an empty street) then BUSY s of the
#   clip itself (bicycles and people moving). 80 % still by default.
#   Both runs: ingest --fps 10 -> detect (1 thread) -> subscribe tail, each to its own topics.
#   Recall: of the frames sampled in the busy stretches, the share whose labels (score >= 0.5) are those of
#   the ungated run, taking for a frame left out the labels of the camera's last published frame (what a
#   subscriber holds). Frames are lined up by their place among the sampled frames: seq plus the
#   `unchanged_before` counts up to it.
#   bench/motion.sh ; env STATIC (default 12), BUSY (3), CYCLES (4), FPS (10), KEEPALIVE (2s)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

STATIC="${STATIC:-12}" BUSY="${BUSY:-3}" CYCLES="${CYCLES:-4}" FPS="${FPS:-10}" KEEPALIVE="${KEEPALIVE:-2s}"
MODEL="$CACHE/models/ssdlite_mobilenet_v2_coco.onnx"
SOURCE="$CACHE/media/bikes.mp4"

build_pipeline

log "building the clip: $CYCLES x ($STATIC s still + $BUSY s busy)"
: >"$WORK/list"
for i in $(seq 0 $((CYCLES - 1))); do
    # Busy stretches are spread over the source clip; the still before each is that stretch's first frame.
    at=$(awk -v i="$i" -v c="$CYCLES" -v b="$BUSY" 'BEGIN { printf "%.2f", i * (10 - b) / (c > 1 ? c - 1 : 1) }')
    ffmpeg -v error -y -ss "$at" -i "$SOURCE" -frames:v 1 "$WORK/still$i.png"
    ffmpeg -v error -y -loop 1 -framerate 25 -t "$STATIC" -i "$WORK/still$i.png" \
        -vf "noise=alls=6:allf=t,eq=eval=frame:brightness='0.04*t/$STATIC',format=yuv420p" \
        -c:v libx264 -preset veryfast -g 50 "$WORK/still$i.mp4"
    ffmpeg -v error -y -ss "$at" -t "$BUSY" -i "$SOURCE" -an -vf format=yuv420p -c:v libx264 -preset veryfast \
        -g 50 -r 25 "$WORK/busy$i.mp4"
    printf "file '%s'\nfile '%s'\n" "$WORK/still$i.mp4" "$WORK/busy$i.mp4" >>"$WORK/list"
done
ffmpeg -v error -y -f concat -safe 0 -i "$WORK/list" -c copy "$WORK/clip.mp4"

start_broker

# CPU seconds (user + system) a live process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run MODE [INGEST FLAGS...]: ingest the clip, then detect and tail it; leaves $WORK/MODE.{ingest,jsonl,cpu}.
run() {
    local mode="$1" frames="bench-motion-$1-$RANDOM" results="bench-motion-$1-results-$RANDOM" detect published
    shift
    ( "$BIN/ingest" --camera street --fps "$FPS" --topic "$frames" --progress log --summary-format json \
        "$@" "$WORK/clip.mp4" >"$WORK/$mode.ingest" 2>"$WORK/$mode.ingest.log"; times ) >"$WORK/$mode.times"
    published=$(jq '.cameras[0].published' "$WORK/$mode.ingest")
    "$BIN/detect" --model "$MODEL" --threads 1 --group "bench-$mode-$RANDOM" --input-topic "$frames" \
        --output-topic "$results" >"$WORK/$mode.detect.log" 2>&1 &
    detect=$!
    PIDS+=("$detect")
    "$BIN/subscribe" tail --topic "$results" --from-beginning --count "$published" --idle-exit 120s --json \
        >"$WORK/$mode.jsonl" 2>"$WORK/$mode.tail.log"
    echo "$(cpu_s "$detect") $(awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$WORK/$mode.times")" \
        >"$WORK/$mode.cpu"
    kill "$detect"
    wait "$detect" 2>/dev/null || true
}

log "without gating"; run full
log "with --motion (keep-alive $KEEPALIVE)"; run motion --motion --motion-keepalive "$KEEPALIVE"

python3 - "$WORK" "$STATIC" "$BUSY" "$FPS" <<'PY'
import json, sys
work, static, busy, fps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])

def records(mode):
    rows = [json.loads(l) for l in open(f"{work}/{mode}.jsonl") if l.startswith("{")]
    rows.sort(key=lambda r: r["seq"])
    # A frame's place among the sampled frames: the frames before it, published or left out unchanged.
    place, out = 0, {}
    for r in rows:
        place += r.get("unchanged_before", 0)
        out[place] = frozenset(d["label"] for d in r["detections"] if d["score"] >= 0.5)
        place += 1
    return out, place

full, sampled = records("full")
gated, _ = records("motion")
ingest = {m: json.load(open(f"{work}/{m}.ingest"))["cameras"][0] for m in ("full", "motion")}
cpu = {m: [float(x) for x in open(f"{work}/{m}.cpu").read().split()] for m in ("full", "motion")}

busy_frames = matched = 0
held = frozenset()
for i in range(sampled):
    held = gated.get(i, held)
    if (i / fps) % (static + busy) >= static:
        busy_frames += 1
        matched += held == full.get(i, frozenset())
recall = matched / busy_frames if busy_frames else 0.0
pub_full, pub_motion = ingest["full"]["published"], ingest["motion"]["published"]
fewer = pub_full / pub_motion if pub_motion else float("inf")
ok = lambda c: "met" if c else "NOT met"
print(f"""
motion gating benchmark (clip: {sampled / fps:.0f} s at --fps {fps:g}, {static:g} s still / {busy:g} s busy per cycle, {static / (static + busy):.0%} still)
| run          | frames published | left out unchanged | keep-alives | detect CPU s | ingest CPU s |
|--------------|------------------|--------------------|-------------|--------------|--------------|
| no gating    | {pub_full} | {ingest['full'].get('unchanged', 0)} | - | {cpu['full'][0]:.1f} | {cpu['full'][1]:.1f} |
| --motion     | {pub_motion} | {ingest['motion'].get('unchanged', 0)} | {ingest['motion'].get('keepalive', 0)} | {cpu['motion'][0]:.1f} | {cpu['motion'][1]:.1f} |
| frames published, no gating / --motion | {fewer:.2f}x | goal >= 4x | {ok(fewer >= 4)} |
| busy-stretch frames whose labels match the ungated run | {matched}/{busy_frames} = {recall:.1%} | goal >= 98% | {ok(recall >= 0.98)} |""")
PY
