#!/usr/bin/env bash
# bench-scrape.sh -- what a /metrics scrape costs a node that holds 15,000
# waiters: a private redis-server and one node (2 workers) on free loopback
# ports, holdline-bench holding the waiters on 1,000 channels, then the
# node's CPU over N scrapes on one keep-alive connection (curl's URL
# globbing), less what the node spends idle in the same time.
#
# Usage: bench-scrape.sh [BINDIR]   (holdline and holdline-bench; bin)
# Environment: N=2000 scrapes.
set -eu
cd "$(dirname "$0")/.."
bindir=${1:-bin}
me=bench-scrape
dir=$(mktemp -d /tmp/holdline-bench-scrape-XXXXXX)
pids=()
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
rp=$(free_port 7431)
np=$(free_port $((rp + 1)))
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    >"$dir/redis.log" 2>&1 &
rpid=$!
sleep 0.3
ulimit -n "$(ulimit -Hn)"
HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_HTTP_WORKERS=2 HOLDLINE_LOG_LEVEL=warn \
    "$bindir/holdline" -p "$np" --redis "127.0.0.1:$rp" >"$dir/node.log" 2>&1 &
npid=$!
bpid=""
trap 'for p in $bpid $npid $rpid; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$dir"' EXIT
wait_ready "$np"
"$bindir/holdline-bench" hold -n "127.0.0.1:$np" -c 15000 -k 1000 -d 40 -t 60 -q >"$dir/bench.out" 2>&1 &
bpid=$!
w=0
for _ in $(seq 200); do
    w=$(curl -s "127.0.0.1:$np/metrics" | awk '/^holdline_waiters\{transport="poll"\}/ {print $2}')
    [ "${w:-0}" -ge 15000 ] && break
    sleep 0.2
done
echo "held waiters: $w"
# The node's utime + stime, in clock ticks (the command name has no spaces).
cpu() { awk '{print $14+$15}' "/proc/$npid/stat"; }
tck=$(getconf CLK_TCK)
sleep 2
c0=$(cpu); t0=$(date +%s.%N); sleep 5; c1=$(cpu); t1=$(date +%s.%N)
idle=$(awk -v a="$c0" -v b="$c1" -v t="$tck" -v s="$t0" -v e="$t1" 'BEGIN { print (b - a) / t / (e - s) }')
N=${N:-2000}
c0=$(cpu); t0=$(date +%s.%N)
curl -s -o /dev/null "http://127.0.0.1:$np/metrics?[1-$N]"
c1=$(cpu); t1=$(date +%s.%N)
awk -v a="$c0" -v b="$c1" -v t="$tck" -v s="$t0" -v e="$t1" -v idle="$idle" -v n="$N" 'BEGIN {
    el = e - s; busy = (b - a) / t
    printf "idle node CPU %.3f cores; %d scrapes in %.2f s used %.2f CPU s; %.0f us per scrape (idle subtracted)\n",
        idle, n, el, busy, (busy - idle * el) / n * 1e6 }'
echo "one scrape is $(curl -s "127.0.0.1:$np/metrics" | wc -c) bytes"
