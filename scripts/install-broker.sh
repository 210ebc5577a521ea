#!/usr/bin/env bash
# The local Kafka-protocol broker for the demo and the integration tests: tansu (Apache-2.0, Rust), built
# from crates.io once and kept in ~/.cargo/bin. Production deployments use Apache Kafka (docker-compose.yml).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TANSU_VERSION=0.6.0
# Memory storage for the demo and most tests; SQLite storage (libsql) for the test that restarts the broker
# and expects its data back.
TANSU_FEATURES=dynostore,libsql

# Whether this tansu is the right version and can open SQLite storage (an older install here was built
# with memory storage only; it says "FeatureNotEnabled" when asked for sqlite://).
usable() {
    local bin="$1" dir port
    [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION" || return 1
    dir="$(mktemp -d)"
    port=$((20000 + RANDOM % 20000))
    (cd "$dir" && timeout 3 "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine sqlite://probe.db >"$dir/log" 2>&1 || true)
    ! grep -q FeatureNotEnabled "$dir/log"
    local ok=$?
    rm -rf "$dir"
    return $ok
}

for bin in "$(command -v tansu || true)" "$HOME/.cargo/bin/tansu"; do
    [ -n "$bin" ] && usable "$bin" && exit 0
done
log "building the tansu $TANSU_VERSION broker with memory and SQLite storage (one time, ~25-30 min on 2 cores)"
cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features "$TANSU_FEATURES" --force --quiet
