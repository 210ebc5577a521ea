# framewire's three binaries plus the ONNX Runtime library, on Debian bookworm (FFmpeg 5.1).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        clang libclang-dev pkg-config cmake nasm zlib1g-dev python3-pip \
        libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavdevice-dev libavfilter-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bins --workspace && scripts/fetch-onnxruntime.sh

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libavcodec59 libavformat59 libavutil57 libswscale6 libavdevice59 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ingest /src/target/release/detect /src/target/release/subscribe /usr/local/bin/
COPY --from=build /src/.cache/onnxruntime/ /opt/onnxruntime/
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so
USER nobody
