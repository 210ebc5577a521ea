# shellcheck shell=bash
# Shared helpers for framewire's scripts. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Project-local files the binaries and tests use (ignored by git); FRAMEWIRE_CACHE is where the tests look
# (.cargo/config.toml sets it to this same .cache for cargo).
CACHE="${FRAMEWIRE_CACHE:-$ROOT/.cache}"
# Downloads, kept across clones so a second set-up fetches nothing.
DL="${FRAMEWIRE_DOWNLOADS:-${XDG_CACHE_HOME:-$HOME/.cache}/framewire}"
mkdir -p "$CACHE" "$DL"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# verify FILE SHA256: fails loudly on a mismatch (a corrupted or substituted download).
verify() {
    local got
    got="$(sha256_of "$1")"
    [ "$got" = "$2" ] || die "checksum mismatch for $1: expected $2, got $got"
}

# Runs a command as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

pip_cmd() {
    if python3 -m pip --version >/dev/null 2>&1; then echo "python3 -m pip"; else die "python3 with pip is required (apt-get install python3-pip)"; fi
}

# extract_from_zip ZIP MEMBER DEST
extract_from_zip() {
    python3 - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
}

# summary_json NAME FILE: the one-line JSON summary that NAME (a binary or subcommand run with
# `--summary-format json`) wrote into FILE, among whatever else went there (logs); fails when there is none.
summary_json() {
    local line
    line="$(grep "^{\"summary\":\"$1\"" "$2" | tail -n 1)" || true
    [ -n "$line" ] || die "no $1 summary in $2: $(tail -n 20 "$2")"
    printf '%s\n' "$line"
}

# free_port: an unused TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The patched local broker that scripts/install-broker.sh builds and links here; TANSU_BIN names another (an
# unpatched build, to show what the patch mends). Every script, benchmark and end-to-end test starts it
# through start_tansu below (the tests through scripts/start-broker.sh), never one found on PATH.
TANSU="${TANSU_BIN:-$CACHE/bin/tansu}"

# start_tansu DIR PORT [memory|sqlite]: starts tansu on 127.0.0.1:PORT in the background and sets TANSU_PID,
# returning once it accepts connections, or failing with what went wrong and the last lines of its log.
# It runs in DIR (it reads a .env from its working directory, so DIR should be its own) and appends to
# DIR/tansu.log. Storage: memory (the default; gone when it stops) or sqlite (DIR/tansu.db, which a broker
# started again on the same DIR finds: tests that restart the broker and expect their data back).
start_tansu() {
    local dir="$1" port="$2" storage
    case "${3:-memory}" in
    memory) storage=memory://tansu/ ;;
    sqlite) storage=sqlite://tansu.db ;;
    *) die "start_tansu: unknown storage '$3' (memory or sqlite)" ;;
    esac
    [ -x "$TANSU" ] || die "$TANSU not found: run scripts/install-broker.sh (or make setup)"
    (cd "$dir" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "$storage" \
        >>"$dir/tansu.log" 2>&1 </dev/null) &
    TANSU_PID=$!
    # Up in milliseconds when idle; the end-to-end tests start many at once on two busy cores.
    local deadline=$((SECONDS + 20)) status
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$TANSU_PID" 2>/dev/null; then
            status=0
            wait "$TANSU_PID" || status=$?
            die "tansu exited (status $status) with storage $storage: $(tansu_log_tail "$dir")"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill "$TANSU_PID" 2>/dev/null || true
            die "tansu did not listen on 127.0.0.1:$port within 20 s: $(tansu_log_tail "$dir")"
        fi
        sleep 0.02
    done
}

# tansu_log_tail DIR: where tansu's log is, and its last lines.
tansu_log_tail() {
    printf 'see %s\n%s' "$1/tansu.log" "$(tail -n 40 "$1/tansu.log" 2>/dev/null)"
}
