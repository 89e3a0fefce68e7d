#!/usr/bin/env bash
# bench.sh -- the standard holdline benchmark set (`make bench`): starts a
# private redis-server and two nodes on free loopback ports, runs
# holdline-bench through hold, fan-out, stream and publish runs, prints one
# table, and stops everything it started, by pid.
#
# Usage: bench.sh [BINDIR]     (BINDIR holds holdline and holdline-bench; bin)
# Environment:
#   BENCH_SCALE=0.05     multiply every waiter and channel count (default 1)
#   BENCH_DURATION=10    seconds of each hold, stream and publish run
#   BENCH_KEEP=1         keep the run directory (logs, raw output)
set -euo pipefail

bindir=${1:-bin}
case ${bindir} in -h | --help) sed -n '2,13p' "$0"; exit 0 ;; esac
holdline=$bindir/holdline
bench=$bindir/holdline-bench
scale=${BENCH_SCALE:-1}
duration=${BENCH_DURATION:-10}
for b in "$holdline" "$bench"; do
    [[ -x $b ]] || { echo "bench: $b is not built (run make)" >&2; exit 1; }
done
awk -v s="$scale" 'BEGIN { exit !(s > 0 && s <= 100) }' ||
    { echo "bench: BENCH_SCALE must be a number above 0, got '$scale'" >&2; exit 2; }
[[ $duration =~ ^[0-9]+$ && $duration -ge 1 ]] ||
    { echo "bench: BENCH_DURATION must be whole seconds >= 1, got '$duration'" >&2; exit 2; }

dir=$(mktemp -d /tmp/holdline-bench-XXXXXX)
pids=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The nodes first (SIGTERM: they answer their waiters), then Redis.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${BENCH_KEEP:-0} == 1 || $rc -ne 0 ]]; then
        echo "bench: logs kept in $dir"
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nothing listens on, from $1 upwards.
free_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}

wait_ready() {
    for _ in $(seq 200); do
        curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench: node on port $1 did not become ready; see $dir" >&2
    return 1
}

# n scaled by BENCH_SCALE, at least 1.
scaled() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }

# Every held waiter is an open file in a node and in the bench.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

redis_port=$(free_port 6390)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" >"$dir/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 200); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
done

ports=()
node_pids=()
next=8081
for i in 1 2; do
    port=$(free_port "$next")
    next=$((port + 1))
    HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_NODE_NAME="bench-node$i" HOLDLINE_LOG_LEVEL=warn \
        "$holdline" -c config/holdline.cfg -p "$port" --redis "127.0.0.1:$redis_port" \
        >"$dir/node$i.log" 2>&1 &
    pids=("$!" "${pids[@]}")
    node_pids+=("$!")
    ports+=("$port")
done
for port in "${ports[@]}"; do wait_ready "$port"; done
nodes="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
server_pids="${node_pids[0]},${node_pids[1]},$redis_pid"

echo "holdline bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
    "$(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)," \
    "holdline $(git rev-parse --short HEAD 2>/dev/null || echo '?'), scale $scale"
echo "redis :$redis_port, nodes :${ports[0]} :${ports[1]}; every run's output in $dir"

results=$dir/results
: >"$results"
status=0

# run NAME MODE ARGS...: one holdline-bench run; its RESULT line is kept.
run() {
    local name=$1
    shift
    echo "bench: $name: holdline-bench $* -n $nodes" >&2
    local rc=0
    "$bench" "$@" -n "$nodes" -q >"$dir/$name.out" 2>"$dir/$name.err" || rc=$?
    local line
    line=$(grep '^RESULT ' "$dir/$name.out" | tail -n 1 || true)
    [[ -n $line ]] || line="RESULT mode=$1 (none: see $dir/$name.err)"
    echo "$name exit=$rc ${line#RESULT }" >>"$results"
    [[ $rc -eq 0 ]] || status=1
}

# The standard set of issue 5. Hold goes first, on fresh nodes, so the
# memory it reports is the waiters' and not what earlier runs left.
run hold "hold" -c "$(scaled 15000)" -d "$duration" --pid "$server_pids"
run fanout-1k "fanout" -c "$(scaled 1000)" -r 5
run fanout-10k "fanout" -c "$(scaled 10000)" -r 5
run fanout-1kx10 "fanout" -c "$(scaled 10000)" -k "$(scaled 1000)" -r 5
run stream "stream" -c "$(scaled 1000)" -k "$(scaled 100)" -m 10 -d "$duration"
run publish "publish" -C 16 -w "$(scaled 1000)" -d "$duration"

echo
awk '
function v(key,   i, kv) {
    for (i = 2; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == key) return kv[2]
    }
    return "-"
}
BEGIN {
    fmt = "%-13s %7s %7s %7s %5s %5s %8s %8s %8s %8s %9s %9s %6s %4s\n"
    printf fmt, "run", "waiters", "held", "got", "miss", "gaps", "p50 ms", "p90 ms", "p99 ms",
        "max ms", "rate/s", "B/waiter", "errors", "exit"
}
{
    w = v("waiters"); if (w == "-") w = v("bg_waiters")
    got = v("received"); if (got == "-") got = v("deliveries")
    rate = v("deliveries_per_s"); if (rate == "-") rate = v("publishes_per_s")
    miss = v("missing"); gaps = v("gaps")
    split($2, e, "=")
    printf fmt, $1, w, v("held"), got, miss, gaps, v("p50_ms"), v("p90_ms"), v("p99_ms"),
        v("max_ms"), rate, v("per_waiter_bytes"), v("errors"), e[2]
}' "$results"
echo
echo "server CPU while holding: $(awk '$1 == "hold" { for (i = 2; i <= NF; i++) if ($i ~ /^server_cpu_pct=/) { sub(/.*=/, "", $i); print $i "% of one core" } }' "$results")"
echo "raw RESULT lines:"
sed 's/^/  /' "$results"
exit "$status"
