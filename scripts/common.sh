# Shared helpers for framewire's scripts. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Project-local files the binaries and tests use (ignored by git).
CACHE="$ROOT/.cache"
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

# free_port: an unused TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The patched local broker that scripts/install-broker.sh builds and links here.
TANSU="$CACHE/bin/tansu"

# start_tansu DIR PORT: starts tansu on 127.0.0.1:PORT with in-memory storage, running in DIR (it reads a
# .env from its working directory, so DIR should be its own) and logging to DIR/tansu.log; sets TANSU_PID and
# returns once it accepts connections, or fails naming the log.
start_tansu() {
    local dir="$1" port="$2"
    [ -x "$TANSU" ] || die "$TANSU not found: run scripts/install-broker.sh (or make setup)"
    (cd "$dir" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ \
        >"$dir/tansu.log" 2>&1 </dev/null) &
    TANSU_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$TANSU_PID" 2>/dev/null || break
        sleep 0.1
    done
    die "tansu did not start (see $dir/tansu.log)"
}
