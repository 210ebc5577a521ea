#!/usr/bin/env bash
# The local Kafka-protocol broker for the demo and the integration tests: tansu (Apache-2.0, Rust), built
# from crates.io once and kept in ~/.cargo/bin. Production deployments use Apache Kafka (docker-compose.yml).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TANSU_VERSION=0.6.0
if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    exit 0
fi
if [ -x "$HOME/.cargo/bin/tansu" ] && "$HOME/.cargo/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    exit 0
fi
log "building the tansu $TANSU_VERSION broker (one time, ~15-20 min on 2 cores)"
# In-memory storage only: no system libraries needed, and test data never outlives the broker.
cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features dynostore --quiet
