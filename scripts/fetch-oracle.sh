#!/usr/bin/env bash
# The detection oracle's Python environment (e2e/tests/support/oracle.py): the official onnxruntime wheel,
# numpy and simplejpeg (libjpeg-turbo with its DCT scaling, which detect documents and Pillow cannot do at
# n/8 scales) in .cache/oracle-venv. The oracle re-implements detect's preprocessing and NMS from the
# models' documentation, so the tests can check detect's boxes against something detect did not compute.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV="$CACHE/oracle-venv"
# Same ONNX Runtime as the library detect loads (scripts/fetch-onnxruntime.sh), so the two differ only in
# the code around the model.
PINS=(onnxruntime==1.32.0 numpy==2.4.6 simplejpeg==1.9.0)
STAMP="$VENV/.framewire-pins"

if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${PINS[*]}" ]; then
    exit 0
fi
python3 -m venv --help >/dev/null 2>&1 || die "python3 with venv is required (apt-get install python3-venv)"
log "creating the oracle's Python environment in $VENV (${PINS[*]})"
rm -rf "$VENV"
python3 -m venv "$VENV"
# The wheel scripts/fetch-onnxruntime.sh downloaded is reused when it matches this Python.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --find-links "$DL" "${PINS[@]}"
echo "${PINS[*]}" >"$STAMP"
