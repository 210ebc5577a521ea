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

# start_tansu DIR PORT [memory|sqlite] [--user NAME] [--tls TLSPORT CERT KEY]: starts tansu on 127.0.0.1:PORT in
# the background and sets TANSU_PID, returning once it accepts connections (and stunnel too, with --tls), or
# failing with what went wrong and the last lines of its log. It runs in DIR (it reads a .env from its working
# directory, so DIR should be its own) and appends to DIR/tansu.log. Storage: memory (the default; gone when it
# stops) or sqlite (DIR/tansu.db, which a broker started again on the same DIR finds: tests that restart the
# broker and expect their data back). A secured broker, as managed Kafka services run them:
#   --user NAME   clients must authenticate with SASL SCRAM-SHA-256 or SCRAM-SHA-512 (tansu --authentication;
#                 tansu 0.6.0 offers no PLAIN) as NAME, whose password is in TANSU_USER_PASSWORD. tansu's CLI cannot
#                 authenticate, so the user is made by a first start without --authentication, once per DIR; it
#                 lives in DIR/tansu.db, so this needs sqlite storage.
#   --tls TLSPORT CERT KEY   stunnel4 terminates TLS on 127.0.0.1:TLSPORT with CERT and KEY (PEM) in front of
#                 PORT, which stays plaintext (SASL-only with --user), and tansu advertises localhost:TLSPORT so
#                 that clients come back through TLS (tansu 0.6.0's own --cert and --key cannot be given
#                 together). Sets STUNNEL_PID; writes DIR/stunnel.conf and DIR/stunnel.log.
start_tansu() {
    local dir="$1" port="$2" kind="${3:-memory}" storage user="" tls_port="" cert="" key="" advertised
    shift "$(($# < 3 ? $# : 3))"
    while [ "$#" -gt 0 ]; do
        case "$1" in
        --user)
            [ "$#" -ge 2 ] || die "start_tansu: --user NAME"
            user="$2"
            shift 2
            ;;
        --tls)
            [ "$#" -ge 4 ] || die "start_tansu: --tls TLSPORT CERT KEY"
            tls_port="$2" cert="$3" key="$4"
            shift 4
            ;;
        *) die "start_tansu: unknown option '$1' (--user NAME, --tls TLSPORT CERT KEY)" ;;
        esac
    done
    case "$kind" in
    memory) storage=memory://tansu/ ;;
    sqlite) storage=sqlite://tansu.db ;;
    *) die "start_tansu: unknown storage '$kind' (memory or sqlite)" ;;
    esac
    [ -x "$TANSU" ] || die "$TANSU not found: run scripts/install-broker.sh (or make setup)"
    advertised="tcp://127.0.0.1:$port"
    if [ -n "$tls_port" ]; then
        command -v stunnel4 >/dev/null || die "stunnel4 not found: run scripts/setup.sh (Debian package stunnel4)"
        advertised="tcp://localhost:$tls_port"
    fi
    if [ -n "$user" ]; then
        [ "$kind" = sqlite ] || die "start_tansu --user needs sqlite storage: the user must outlive a restart"
        [ -n "${TANSU_USER_PASSWORD:-}" ] || die "start_tansu --user $user: set TANSU_USER_PASSWORD"
        grep -qxF "$user" "$dir/tansu-users" 2>/dev/null || tansu_add_user "$dir" "$port" "$storage" "$user"
        run_tansu "$dir" "$port" "$advertised" "$storage" --authentication
    else
        run_tansu "$dir" "$port" "$advertised" "$storage"
    fi
    if [ -n "$tls_port" ]; then
        printf '%s\n' "foreground = yes" "pid = $dir/stunnel.pid" "[kafka]" "accept = 127.0.0.1:$tls_port" \
            "connect = 127.0.0.1:$port" "cert = $cert" "key = $key" >"$dir/stunnel.conf"
        stunnel4 "$dir/stunnel.conf" >>"$dir/stunnel.log" 2>&1 </dev/null &
        STUNNEL_PID=$!
        if ! await_listen stunnel "$STUNNEL_PID" "$tls_port" "$dir/stunnel.log"; then
            kill "$TANSU_PID" 2>/dev/null || true
            exit 1
        fi
    fi
}

# run_tansu DIR PORT ADVERTISED_URL STORAGE_URL [FLAG...]: one tansu process (see start_tansu); sets TANSU_PID.
run_tansu() {
    local dir="$1" port="$2" advertised="$3" storage="$4"
    shift 4
    (cd "$dir" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "$advertised" --storage-engine "$storage" "$@" \
        >>"$dir/tansu.log" 2>&1 </dev/null) &
    TANSU_PID=$!
    await_listen "tansu with storage $storage" "$TANSU_PID" "$port" "$dir/tansu.log" || exit 1
}

# tansu_add_user DIR PORT STORAGE_URL NAME: makes NAME a SCRAM-SHA-256 and SCRAM-SHA-512 user of the broker whose
# data is in DIR, through a tansu started for this alone, without --authentication, and stopped again.
tansu_add_user() {
    local dir="$1" port="$2" storage="$3" user="$4" mechanism status=0
    run_tansu "$dir" "$port" "tcp://127.0.0.1:$port" "$storage"
    for mechanism in scram256 scram512; do
        # tansu takes the password only as an argument; it is the local broker's own, never a user's.
        (cd "$dir" && exec "$TANSU" user create --broker "tcp://127.0.0.1:$port" --mechanism "$mechanism" \
            "$user" "$TANSU_USER_PASSWORD" >>"$dir/tansu.log" 2>&1) || status=$?
        [ "$status" = 0 ] || break
    done
    kill "$TANSU_PID" 2>/dev/null || true
    wait "$TANSU_PID" 2>/dev/null || true
    [ "$status" = 0 ] || die "tansu user create $user ($mechanism) failed (status $status): $(log_tail "$dir/tansu.log")"
    echo "$user" >>"$dir/tansu-users"
}

# await_listen NAME PID PORT LOG: returns once 127.0.0.1:PORT accepts connections. If PID exits first, or 20 s
# pass (then it is stopped), says so on stderr with the last lines of LOG and returns 1.
await_listen() {
    local name="$1" pid="$2" port="$3" log="$4" status deadline=$((SECONDS + 20))
    # Up in milliseconds when idle; the end-to-end tests start many at once on two busy cores.
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            status=0
            wait "$pid" || status=$?
            printf 'error: %s exited (status %s): %s\n' "$name" "$status" "$(log_tail "$log")" >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            printf 'error: %s did not listen on 127.0.0.1:%s within 20 s: %s\n' "$name" "$port" "$(log_tail "$log")" >&2
            return 1
        fi
        sleep 0.02
    done
}

# log_tail LOG: where a log is, and its last lines.
log_tail() {
    printf 'see %s\n%s' "$1" "$(tail -n 40 "$1" 2>/dev/null)"
}
