#!/usr/bin/env bash
# Installs everything framewire needs on a Debian/Ubuntu machine, idempotently: system packages, the
# Kafka-protocol broker used locally (tansu, unless FRAMEWIRE_BROKERS names another), the ONNX Runtime
# library, the detector model and sample media.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APT_PACKAGES=(
    build-essential pkg-config libclang-dev cmake nasm zlib1g-dev
    libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev libavfilter-dev ffmpeg
    python3 python3-venv docker-compose
    # promtool validates the Prometheus config and lints every binary's /metrics output in the tests.
    prometheus
    # A real RTSP server for the live-camera tests (GStreamer's, driven from /usr/bin/python3).
    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
    # The web view is tested in a real headless browser; the store against a real PostgreSQL server.
    chromium postgresql
    # make test lints every shell script; the demo and the benchmarks read the binaries' JSON summaries.
    shellcheck jq
    # librdkafka's TLS comes from OpenSSL built from source (perl drives its build); the secured-Kafka tests
    # put stunnel in front of the broker, and the HTTPS browser test trusts the test CA through certutil.
    perl stunnel4 libnss3-tools
    # The web view's HTTPS answers (headers, cookie, certificate checks) are tested with curl; the uploads test
    # counts stored rows with the sqlite3 CLI rather than framewire's own reader.
    curl sqlite3
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The local broker takes ~25 minutes to build once; a user whose FRAMEWIRE_BROKERS points at a Kafka of
# their own never runs it, so it is not built for them (`make test` builds it: the tests start their own).
if [ -z "${FRAMEWIRE_BROKERS:-}" ]; then
    "$ROOT/scripts/install-broker.sh"
else
    log "using the Kafka at FRAMEWIRE_BROKERS=$FRAMEWIRE_BROKERS; the local broker is not built"
fi
"$ROOT/scripts/fetch-onnxruntime.sh"
"$ROOT/models/fetch.sh"
"$ROOT/scripts/fetch-media.sh"
log "setup complete"
