#!/usr/bin/env bash
# The local Kafka-protocol broker for the demo, the tests and the benchmarks: tansu 0.6.0 (Apache-2.0, Rust),
# built once from its published crate sources with one patch of ours (scripts/tansu/*.patch), and linked
# at .cache/bin/tansu, the one place every script and test starts it from. Production deployments use
# Apache Kafka (docker-compose.yml); a user whose FRAMEWIRE_BROKERS points at one never needs this.
#
# Why patched: tansu 0.6.0 answers a fetch that starts inside a record batch with the next batch, so a
# consumer resuming from a committed offset mid-batch silently loses the rest of that batch, and its
# ListOffsets answers "latest" with the last batch's base offset + 1 and "by time" with the time each batch
# was written. The patch makes all three answer as Apache Kafka does (memory storage; the SQLite storage
# already stores and fetches record by record). It also makes a fetch answer as soon as records are there:
# tansu 0.6.0 (and its main branch as of 2026-12) sleeps out the consumer's whole fetch.wait.max.ms after
# every read, which added that wait to every Kafka hop of a live frame.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TANSU_VERSION=0.6.0
# Memory storage for the demo and most tests; SQLite storage (libsql) for the tests that restart the broker
# and expect their data back.
TANSU_FEATURES=dynostore,libsql
# The published crates, pinned: the broker itself and the storage crate the patch applies to.
declare -A CRATE_SHA256=(
    [tansu]=4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
    [tansu-storage]=720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d
)
PATCH="$ROOT/scripts/tansu/fetch-holding-batch-and-list-offsets.patch"

# The build is keyed by version, features and patch: a tansu built from anything else (an unpatched one from
# an earlier set-up, or one on PATH) is never used, and a changed patch rebuilds once.
STAMP="tansu $TANSU_VERSION features=$TANSU_FEATURES patch=$(sha256_of "$PATCH")"
PREFIX="$DL/tansu-$TANSU_VERSION"
LINK="$CACHE/bin/tansu"

if [ -x "$PREFIX/bin/tansu" ] && [ "$(cat "$PREFIX/STAMP" 2>/dev/null)" = "$STAMP" ]; then
    mkdir -p "$(dirname "$LINK")"
    ln -sfn "$PREFIX/bin/tansu" "$LINK"
    exit 0
fi

log "building the tansu $TANSU_VERSION broker, patched, with memory and SQLite storage (one time, ~25 min on 2 cores)"
WORK="$DL/tansu-build"
rm -rf "$WORK/fetch" "$WORK/src"
mkdir -p "$WORK/fetch/src" "$WORK/src"

# cargo fetches the published crates (checked against the registry index); their manifests say where.
cat >"$WORK/fetch/Cargo.toml" <<TOML
[package]
name = "tansu-sources"
version = "0.0.0"
edition = "2021"
[dependencies]
tansu = "=$TANSU_VERSION"
tansu-storage = "=$TANSU_VERSION"
TOML
echo 'fn main() {}' >"$WORK/fetch/src/main.rs"
(cd "$WORK/fetch" && cargo fetch --quiet)
# tansu itself has no library target, so cargo leaves it out of the metadata; it is unpacked beside the
# storage crate in the same registry directory.
registry_src="$(cd "$WORK/fetch" && cargo metadata --format-version 1 --quiet | python3 -c '
import json, os, sys
print(next(os.path.dirname(os.path.dirname(p["manifest_path"])) for p in json.load(sys.stdin)["packages"]
           if p["name"] == "tansu-storage" and p["version"] == sys.argv[1]))
' "$TANSU_VERSION")"
for crate in tansu tansu-storage; do
    src="$registry_src/$crate-$TANSU_VERSION"
    # The .crate archive cargo unpacked, in the registry's cache/ beside its src/.
    archive="${src/\/registry\/src\//\/registry\/cache\/}.crate"
    verify "$archive" "${CRATE_SHA256[$crate]}"
    cp -r "$src" "$WORK/src/$crate"
done

patch --quiet -p1 -d "$WORK/src/tansu-storage" <"$PATCH"
cat >>"$WORK/src/tansu/Cargo.toml" <<TOML

[workspace]

[patch.crates-io]
tansu-storage = { path = "../tansu-storage" }
TOML

# cargo build keeps the crate's own Cargo.lock, which pins every other dependency (cargo install would
# resolve them anew); only tansu-storage's entry changes, to the patched path. The target directory is kept,
# so that a changed patch recompiles only what depends on it.
(cd "$WORK/src/tansu" && cargo build --quiet --release --no-default-features --features "$TANSU_FEATURES" \
    --target-dir "$WORK/target")
mkdir -p "$PREFIX/bin"
cp "$WORK/target/release/tansu" "$PREFIX/bin/tansu.tmp"
mv "$PREFIX/bin/tansu.tmp" "$PREFIX/bin/tansu"
echo "$STAMP" >"$PREFIX/STAMP"
mkdir -p "$(dirname "$LINK")"
ln -sfn "$PREFIX/bin/tansu" "$LINK"
log "tansu installed at $PREFIX/bin/tansu ($LINK)"
