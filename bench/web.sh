#!/usr/bin/env bash
# The review pages of `subscribe web` on a big SQLite store: a made-up week of 16 cameras at 1 fps with about
# BOXES boxes, written through the store's own write path (subscribe/examples/fill_store.rs). Each page is
# fetched REQUESTS times, one request at a time, after 3 warm-ups; the baseline, measured in the same run, is
# /style.css, a request that touches no database. Reports p50 and p99 per page (nearest rank: of 30 requests,
# p99 is the slowest), p50 as a ratio to the baseline's, and whether p50 is under 100 ms, the goal.
# The times are curl's time_total, connection included, on a machine that also runs the broker.
#   bench/web.sh ; env BOXES (default 1000000), REQUESTS (default 30), DEPTH (pages followed through a#older
#   for the deep page, default 100), WEB_DB (a SQLite file to keep: filled when missing, reused as it is when
#   there, so its "last 24 h" views thin out as it ages; by default a fresh one in the scratch directory),
#   BENCH_BROKERS (a broker elsewhere instead of a local tansu)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BOXES="${BOXES:-1000000}"
REQUESTS="${REQUESTS:-30}"
DEPTH="${DEPTH:-100}"
WARMUPS=3
DB="${WEB_DB:-$WORK/store.db}"

"$ROOT/scripts/setup.sh" >/dev/null
log "building release binaries"
cargo build --release --quiet -p framewire-subscribe --bins --examples
BIN="$ROOT/target/release"

# The fill's JSON summary is kept beside the file: a reused store reports what it holds.
FILL="$DB.fill.json"
if [ -e "$DB" ]; then
    [ -e "$FILL" ] || die "$DB exists but was not filled by this benchmark (no $FILL): remove it"
    log "reusing $DB, its newest frames $((($(date +%s) * 1000 - $(jq .to_ms "$FILL")) / 60000)) min old (remove it to refill)"
else
    log "filling $DB with about $BOXES boxes"
    "$BIN/examples/fill_store" --db "sqlite://$DB" --boxes "$BOXES" >"$WORK/fill.out"
    summary_json fill_store "$WORK/fill.out" >"$FILL"
fi

start_broker
port="$(free_port)"
URL="http://127.0.0.1:$port"
"$BIN/subscribe" web --db "sqlite://$DB" --listen "127.0.0.1:$port" >"$WORK/web.log" 2>&1 &
PIDS+=($!)
await_listen subscribe "${PIDS[-1]}" "$port" "$WORK/web.log" || die "subscribe web did not start"

# page_facts PATH: the href of the page's a#older (empty on the last page) and the first listed event's id,
# one a line.
page_facts() {
    curl -sf "$URL$1" | python3 -c '
import sys
from html.parser import HTMLParser
class Facts(HTMLParser):
    older, event = "", ""
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("id") == "older":
            self.older = a.get("href") or ""
        if not self.event and "event" in (a.get("class") or "").split() and a.get("data-id"):
            self.event = a["data-id"]
p = Facts()
p.feed(sys.stdin.read())
print(p.older)
print(p.event)'
}

# A page far back: a#older followed DEPTH times from the first page, as a reader paging back would.
deep="/review" back=0
while [ "$back" -lt "$DEPTH" ]; do
    older="$(page_facts "$deep" | sed -n 1p)"
    [ -n "$older" ] || { log "no a#older after $back pages: the deep page is the last one"; break; }
    case "$older" in
    /*) deep="$older" ;;
    \?*) deep="/review$older" ;;
    *) die "a#older has an href this script cannot follow: $older" ;;
    esac
    back=$((back + 1))
done
EVENT="$(page_facts "$deep" | sed -n 2p)"
[ -n "$EVENT" ] || die "no .event[data-id] on $URL$deep"

# A 6 h window in the middle of the stored week (Unix ms, one of the forms the filters take).
FROM=$(jq '(.from_ms + .to_ms) / 2 | floor' "$FILL")
TO=$((FROM + 6 * 3600 * 1000))

# "name|path": the table shows the name.
PAGES=(
    "/style.css|/style.css"
    "/review|/review"
    "/review?camera=cam3|/review?camera=cam3"
    "/review?label=dog&min_score=0.8|/review?label=dog&min_score=0.8"
    "/review?camera=cam3&label=person&from&to (6 h)|/review?camera=cam3&label=person&from=$FROM&to=$TO"
    "/review, $back pages back through a#older|$deep"
    "/api/events?limit=50|/api/events?limit=50"
    "/events/ID (with prev/next)|/events/$EVENT"
    "/cameras/cam3|/cameras/cam3"
    "/api/cameras|/api/cameras"
    "/api/cameras/cam3/counts?hours=24|/api/cameras/cam3/counts?hours=24"
)

# measure PATH: WARMUPS + REQUESTS sequential GETs; prints "p50 p99" in ms, or "HTTP CODE" for a request
# that was not answered 200.
measure() {
    local times="$WORK/times" code t i
    : >"$times"
    for i in $(seq $((WARMUPS + REQUESTS))); do
        read -r code t < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$URL$1")
        [ "$code" = 200 ] || { echo "HTTP $code"; return; }
        [ "$i" -le "$WARMUPS" ] || echo "$t" >>"$times"
    done
    sort -g "$times" | awk '{ t[NR] = $1 * 1000 } END {
        p50 = int((NR * 50 + 99) / 100); p99 = int((NR * 99 + 99) / 100)
        printf "%.1f %.1f\n", t[p50], t[p99] }'
}

log "timing ${#PAGES[@]} pages, $REQUESTS requests each after $WARMUPS warm-ups"
ROWS=()
FAILED=0
BASE=""
row() { ROWS+=("$(printf '| %-48s | %8s | %8s | %-9s | %-8s |' "$@")"); }
for page in "${PAGES[@]}"; do
    name="${page%%|*}"
    read -r p50 p99 < <(measure "${page#*|}")
    if [ "$p50" = HTTP ]; then
        row "$name" "HTTP $p99" "" "" ""
        FAILED=1
    elif [ -z "$BASE" ]; then
        BASE="$p50"
        row "$name" "$p50" "$p99" baseline ""
    else
        row "$name" "$p50" "$p99" "$(awk -v a="$p50" -v b="$BASE" 'BEGIN { printf "%.0fx", a / b }')" \
            "$(awk -v a="$p50" 'BEGIN { print (a < 100 ? "yes" : "NO") }')"
    fi
done

cat <<REPORT

review pages benchmark ($(nproc) cores; SQLite, $(du -m "$DB" | cut -f1) MB: $(jq -r \
    '"\(.frames) frames, \(.boxes) boxes, \(.events) events, \(.cameras) cameras; filled in \(.seconds | floor) s"' "$FILL"))
$REQUESTS requests a page after $WARMUPS warm-ups, one at a time; p99 by nearest rank
| page                                             |   p50 ms |   p99 ms | p50 ratio | < 100 ms |
|--------------------------------------------------|----------|----------|-----------|----------|
$(printf '%s\n' "${ROWS[@]}")
REPORT
[ "$FAILED" = 0 ] || die "a page did not answer 200 (see the table); the server's last words: $(tail -n 3 "$WORK/web.log")"
