# framewire's three binaries plus the ONNX Runtime library and the default detector model, on Debian bookworm
# (FFmpeg 5.1). The model is converted at build time (models/fetch.sh: pinned TensorFlow + tf2onnx, ~250 MB of
# wheels, in the build stage only).
FROM rust:1.95-bookworm AS build
# perl and make build the OpenSSL that librdkafka's TLS links statically (rdkafka's `ssl-vendored`).
RUN apt-get update && apt-get install -y --no-install-recommends \
        clang libclang-dev pkg-config cmake nasm zlib1g-dev perl make python3-pip python3-venv \
        libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev libavfilter-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bins --workspace && scripts/fetch-onnxruntime.sh && models/fetch.sh

FROM debian:bookworm-slim
# ca-certificates: with no ssl.ca.location, librdkafka's static OpenSSL looks for the system's CA bundle, which
# verifies managed Kafka (Confluent Cloud, Amazon MSK, Redpanda Cloud); FFmpeg reads it for HTTPS cameras.
RUN apt-get update && apt-get install -y --no-install-recommends \
        libavcodec59 libavformat59 libavutil57 libswscale6 libavdevice59 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ingest /src/target/release/detect /src/target/release/subscribe /usr/local/bin/
COPY --from=build /src/.cache/onnxruntime/ /opt/onnxruntime/
COPY --from=build /src/.cache/models/ /models/
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so
# A named volume mounted here starts with this directory's owner, so the store (as nobody) can write snapshots.
RUN mkdir -p /data/snapshots && chown nobody:nogroup /data/snapshots
WORKDIR /data
USER nobody
