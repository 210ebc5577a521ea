#!/usr/bin/env bash
# The whole test suite, installing what it needs first: formatting, lints, unit tests, the golden model test
# and the end-to-end tests against a real broker.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

"$ROOT/scripts/setup.sh"
# The tests start brokers of their own, whatever FRAMEWIRE_BROKERS says.
"$ROOT/scripts/install-broker.sh"
"$ROOT/scripts/fetch-test-models.sh"
"$ROOT/scripts/fetch-oracle.sh"
"$ROOT/scripts/fetch-test-servers.sh"
for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
log "shellcheck"
# Every shell script: *.sh, and any other file whose first line runs bash or sh (.ci/run). shellcheck reads
# the repository's .shellcheckrc.
scripts=()
while IFS= read -r -d '' f; do
    if [[ "$f" == *.sh ]] || head -n 1 "$f" | grep -qE '^#!.*[/ ](ba)?sh( |$)'; then scripts+=("$f"); fi
done < <(find "$ROOT" \( -name .git -o -name target -o -name .cache -o -name out \) -prune -o -type f -print0)
shellcheck "${scripts[@]}"
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The GPU execution providers must build on a machine without any GPU library.
cargo clippy -p framewire-detect --features cuda,tensorrt --quiet -- -D warnings
log "cargo test"
rm -rf "$ROOT/target/fault-report"
status=0
# Slow tests (real-time clips, outages, kills) are named slow_*; `make test-quick` skips them.
cargo test --workspace -- ${FRAMEWIRE_TEST_SKIP:+--skip "$FRAMEWIRE_TEST_SKIP"} || status=$?
"$ROOT/scripts/fault-table.sh" "$ROOT/target/fault-report"
exit "$status"
