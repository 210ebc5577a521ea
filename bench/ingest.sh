#!/usr/bin/env bash
# ingest throughput on a 720p H.264 file (decode -> JPEG -> broker), against two baselines measured in the
# same run on the same file, neither of which publishes anything:
#   the FFmpeg CLI decoding and JPEG-encoding (ffmpeg -i X -f image2pipe -c:v mjpeg -q:v 5 - >/dev/null);
#   OpenCV as a Python user writes it (cv2.VideoCapture + cv2.imencode at the same JPEG quality as ingest).
# Each is run ROUNDS times, interleaved; the median is reported. Ratios are the result: the machine is noisy.
#   bench/ingest.sh ; env ROUNDS (default 3)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROUNDS="${ROUNDS:-3}"
QUALITY=80
OPENCV="opencv-python-headless==4.12.0.88"
NUMPY="numpy==2.2.6"

"$ROOT/scripts/setup.sh" >/dev/null
VENV="$DL/bench-venv"
if ! "$VENV/bin/python" -c "import cv2" 2>/dev/null; then
    log "installing $OPENCV into $VENV (the OpenCV baseline)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "$OPENCV" "$NUMPY"
fi
log "building ingest (release)"
cargo build --release --quiet -p framewire-ingest
BIN="$ROOT/target/release"

# 720p H.264 from the sample clip: 4 loops of 250 frames, upscaled, yuv420p as cameras send it.
CLIP="$CACHE/bench/bikes-720p.mp4"
if [ ! -f "$CLIP" ]; then
    mkdir -p "$(dirname "$CLIP")"
    ffmpeg -v error -y -stream_loop 3 -i "$CACHE/media/bikes.mp4" -vf scale=1280:720 -c:v libx264 -preset veryfast \
        -crf 20 -pix_fmt yuv420p "$CLIP.tmp.mp4"
    mv "$CLIP.tmp.mp4" "$CLIP"
fi
FRAMES=$(ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets -of csv=p=0 "$CLIP")

start_broker

now() { date +%s.%N; }
fps() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

CLI=() CV=() ING=()
for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS: FFmpeg CLI"
    t0=$(now); ffmpeg -v error -i "$CLIP" -f image2pipe -c:v mjpeg -q:v 5 - >/dev/null; t1=$(now)
    CLI+=("$(fps "$FRAMES" "$t0" "$t1")")
    log "round $round/$ROUNDS: OpenCV"
    t0=$(now); out=$("$VENV/bin/python" "$ROOT/bench/opencv_jpeg.py" "$CLIP" "$QUALITY"); t1=$(now)
    [ "${out%% *}" = "$FRAMES" ] || die "OpenCV read ${out%% *} of $FRAMES frames"
    CV+=("$(fps "$FRAMES" "$t0" "$t1")")
    log "round $round/$ROUNDS: ingest -> Kafka"
    t0=$(now)
    "$BIN/ingest" --camera "bench$round" --topic bench-ingest --jpeg-quality "$QUALITY" --progress log \
        --summary-format json "$CLIP" >"$WORK/ingest.json"
    t1=$(now)
    summary_json ingest "$WORK/ingest.json" | jq -e --argjson n "$FRAMES" '.cameras[0].published == $n' >/dev/null ||
        die "ingest: $(cat "$WORK/ingest.json")"
    ING+=("$(fps "$FRAMES" "$t0" "$t1")")
done
C=$(median "${CLI[@]}") O=$(median "${CV[@]}") I=$(median "${ING[@]}")

cat <<REPORT

ingest benchmark ($(nproc) cores, $FRAMES frames of 1280x720 H.264, JPEG quality $QUALITY, median of $ROUNDS; whole process wall time)
| run                                                  | frames/s | ratio            | goal    |
|------------------------------------------------------|----------|------------------|---------|
| FFmpeg CLI: decode + mjpeg -q:v 5 to /dev/null       | $C | baseline         |         |
| OpenCV: VideoCapture + imencode, no broker           | $O | baseline         |         |
| ingest: decode + JPEG + publish to Kafka (tansu)     | $I | $(ratio "$I" "$C")x CLI, $(ratio "$I" "$O")x OpenCV | >= 1.2 CLI, >= 1.0 OpenCV |
rounds: CLI ${CLI[*]} | OpenCV ${CV[*]} | ingest ${ING[*]}
REPORT
