#!/usr/bin/env bash
# ONNX Runtime (CPU) as a shared library, taken from the official PyPI wheel (no CDN download at build time).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ORT_VERSION=1.32.0
WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
DEST="$CACHE/onnxruntime"
LIB="$DEST/libonnxruntime.so.$ORT_VERSION"

[ "$(uname -m)" = x86_64 ] || die "fetch-onnxruntime.sh knows the x86_64 wheel only; set ORT_DYLIB_PATH to your libonnxruntime.so"
if [ ! -f "$LIB" ]; then
    if [ ! -f "$DL/$WHEEL" ]; then
        log "downloading onnxruntime $ORT_VERSION from PyPI"
        $(pip_cmd) download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux_2_28_x86_64 "onnxruntime==$ORT_VERSION" -d "$DL"
    fi
    verify "$DL/$WHEEL" "$WHEEL_SHA256"
    mkdir -p "$DEST"
    extract_from_zip "$DL/$WHEEL" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$LIB.tmp"
    mv "$LIB.tmp" "$LIB"
fi
ln -sf "libonnxruntime.so.$ORT_VERSION" "$DEST/libonnxruntime.so.1"
ln -sf "libonnxruntime.so.$ORT_VERSION" "$DEST/libonnxruntime.so"
