#!/usr/bin/env bash
# The real servers the object-storage and email tests talk to, in .cache/servers-venv: moto in server mode
# (an S3 API endpoint over HTTP, with boto3 for the tests' own uploads) and aiosmtpd (an SMTP server).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV="$CACHE/servers-venv"
PINS=('moto[server]==5.2.5' aiosmtpd==1.4.6)
STAMP="$VENV/.framewire-pins"

if [ -x "$VENV/bin/moto_server" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${PINS[*]}" ]; then
    exit 0
fi
python3 -m venv --help >/dev/null 2>&1 || die "python3 with venv is required (apt-get install python3-venv)"
log "creating the test servers' Python environment in $VENV (${PINS[*]})"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
echo "${PINS[*]}" >"$STAMP"
