#!/usr/bin/env bash
# Models used only by tests, fetched (never committed): a real YOLOv8n-architecture detector from the PyPI
# package nudenet 3.4.2 (320n.onnx: input images [N,3,320,320], output0 [N,22,2100], 18 classes named in its
# ONNX metadata). Its weights are AGPL-3.0, which is why it stays out of git and out of the product.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEST="$CACHE/test-models"
OUT="$DEST/yolov8n-nudenet-320.onnx"
WHEEL=nudenet-3.4.2-py3-none-any.whl
WHEEL_SHA256=5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331
mkdir -p "$DEST"
[ -f "$OUT" ] && exit 0
if [ ! -f "$DL/$WHEEL" ]; then
    log "downloading nudenet 3.4.2 from PyPI (test model)"
    $(pip_cmd) download --quiet --no-deps --only-binary=:all: nudenet==3.4.2 -d "$DL"
fi
verify "$DL/$WHEEL" "$WHEEL_SHA256"
extract_from_zip "$DL/$WHEEL" nudenet/320n.onnx "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
