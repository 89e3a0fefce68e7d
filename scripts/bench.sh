#!/usr/bin/env bash
# bench.sh -- the standard holdline benchmark set (`make bench`): starts a
# private redis-server and two nodes on free loopback ports, runs
# holdline-bench through hold, fan-out, stream, publish, sweep, idle-cost
# and steady-hold runs, and the fan-out, stream and idle-stream runs again
# over Server-Sent Events (--transport sse), prints one table, and stops
# everything it started, by pid.
#
# Usage: bench.sh [--compare] [BINDIR]   (BINDIR holds holdline and
#                                          holdline-bench; bin)
#   --compare   `make bench-compare`: the same set against holdline (redis +
#               2 nodes), then against nchan (redis + 2 nginx instances x 2
#               workers, config/nchan-bench.conf); prints both tables and
#               one with both and the ratio holdline/nchan per row
# Environment:
#   BENCH_SCALE=0.05     multiply every waiter and channel count (default 1)
#   BENCH_DURATION=10    seconds of each hold, stream and publish run, and of
#                        the idle-cost rows' CPU window
#   BENCH_KEEP=1         keep the run directory (logs, raw output)
#   BENCH_SWEEP_RATES="10 20 ..."  the stream sweep's per-channel rates
#   BENCH_SWEEP_DURATION=5         seconds of each sweep step
#   BENCH_STEADY_DURATION=20       seconds of each hold-steady run (>= 8)
#   BENCH_ONLY="hold-steady idle-cost"  run only these rows or groups:
#                  hold fanout (fanout-1k fanout-10k fanout-1kx10) stream
#                  publish sweep idle-cost (idle-0 idle-15k idle-30k)
#                  hold-steady (hold-steady hold-steady-browser)
#                  sse (sse-fanout (sse-fanout-1k sse-fanout-10k
#                  sse-fanout-1kx10) sse-stream sse-idle)
set -euo pipefail

compare=0
bindir=bin
while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    --compare) compare=1; shift ;;
    *) bindir=$1; shift ;;
    esac
done
holdline=$bindir/holdline
bench=$bindir/holdline-bench
scale=${BENCH_SCALE:-1}
duration=${BENCH_DURATION:-10}
for b in "$holdline" "$bench"; do
    [[ -x $b ]] || { echo "bench: $b is not built (run make)" >&2; exit 1; }
done
nchan_module=/usr/lib/nginx/modules/ngx_nchan_module.so
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [[ $compare == 1 ]]; then
    [[ -x $nginx_bin && -f $nchan_module ]] || {
        echo "bench: --compare needs nginx and $nchan_module" \
            "(make bench-compare installs them: scripts/bench-compare-deps.sh)" >&2
        exit 1
    }
fi
awk -v s="$scale" 'BEGIN { exit !(s > 0 && s <= 100) }' ||
    { echo "bench: BENCH_SCALE must be a number above 0, got '$scale'" >&2; exit 2; }
[[ $duration =~ ^[0-9]+$ && $duration -ge 1 ]] ||
    { echo "bench: BENCH_DURATION must be whole seconds >= 1, got '$duration'" >&2; exit 2; }
steady_duration=${BENCH_STEADY_DURATION:-20}
# Every waiter must re-poll 5 times at 1 msg/s before its window starts.
[[ $steady_duration =~ ^[0-9]+$ && $steady_duration -ge 8 ]] ||
    { echo "bench: BENCH_STEADY_DURATION must be whole seconds >= 8, got '$steady_duration'" >&2; exit 2; }

# BENCH_ONLY: row and group names; a typo would silently run nothing.
only=${BENCH_ONLY:-}
known=(hold fanout fanout-1k fanout-10k fanout-1kx10 stream publish sweep idle-cost idle-0
    idle-15k idle-30k hold-steady hold-steady-browser sse sse-fanout sse-fanout-1k sse-fanout-10k
    sse-fanout-1kx10 sse-stream sse-idle)
for w in $only; do
    [[ " ${known[*]} " == *" $w "* ]] ||
        { echo "bench: BENCH_ONLY: '$w' is not one of: ${known[*]}" >&2; exit 2; }
done

# want ROW [GROUP...]: whether BENCH_ONLY (empty: everything) names the row
# or one of its groups.
want() {
    [[ -z $only ]] && return 0
    local w g
    for w in $only; do
        for g in "$@"; do
            [[ $w == "$g" ]] && return 0
        done
    done
    return 1
}

dir=$(mktemp -d /tmp/holdline-bench-XXXXXX)
pids=()
nginx_workers=()

# Stops the processes in pids (nodes and nginx masters first: SIGTERM, the
# nodes answer their waiters and a master stops its workers; then Redis).
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
    # nginx workers whose master died without stopping them (only ones
    # this script saw started, and only while they are still nginx).
    for pid in "${nginx_workers[@]}"; do
        if [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == nginx:* ]]; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    nginx_workers=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    if [[ ${BENCH_KEEP:-0} == 1 || $rc -ne 0 ]]; then
        echo "bench: logs kept in $dir"
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

me=bench
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# n scaled by BENCH_SCALE, at least 1.
scaled() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }

# Every held waiter is an open file in a node and in the bench.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Starts a private redis-server (no persistence) on a free port; sets
# redis_port and redis_pid.
start_redis() {
    redis_start 6390 "$dir/${1}redis.log"
}

# Settings of the nodes start_holdline starts (NAME=VALUE environment).
holdline_env=()

# redis + two holdline nodes; sets nodes, server_pids, ports.
start_holdline() {
    local prefix=$1 port next=8081 i
    start_redis "$prefix"
    ports=()
    node_pids=()
    for i in 1 2; do
        port=$(free_port "$next")
        next=$((port + 1))
        env "${holdline_env[@]}" HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_NODE_NAME="bench-node$i" \
            HOLDLINE_LOG_LEVEL=warn \
            "$holdline" -c config/holdline.cfg -p "$port" --redis "127.0.0.1:$redis_port" \
            >"$dir/${prefix}node$i.log" 2>&1 &
        pids=("$!" "${pids[@]}")
        node_pids+=("$!")
        ports+=("$port")
    done
    # Explicit returns: fresh_start calls this where set -e does not act.
    for port in "${ports[@]}"; do wait_ready "$port" || return 1; done
    nodes="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
    server_pids="${node_pids[0]},${node_pids[1]},$redis_pid"
}

# wait_nchan_ready PORT MASTER-PID DIR: waits until an nginx + nchan
# instance answers and publishes into Redis (every worker connects to
# Redis on its own, so several in a row).
wait_nchan_ready() {
    local ok=0 code
    for _ in $(seq 200); do
        kill -0 "$2" 2>/dev/null || {
            echo "bench: nginx (pid $2) exited; see $3/error.log:" >&2
            tail -n 3 "$3/error.log" >&2
            return 1
        }
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d ready \
            "http://127.0.0.1:$1/pub/bench-ready" 2>/dev/null || true)
        if [[ $code == 201 || $code == 202 ]]; then
            ok=$((ok + 1))
            [[ $ok -ge 6 ]] && return 0
        else
            ok=0
            sleep 0.05
        fi
    done
    echo "bench: nchan on port $1 did not become ready; see $dir" >&2
    return 1
}

# redis + two nginx instances (2 workers each) with nchan, each with its own
# prefix directory (config, pid file, logs, temp paths) under the run's
# directory, named after PREFIX (nchan-); sets nodes, server_pids (masters,
# workers, redis), ports.
start_nchan() {
    local prefix=${1:-nchan-} port next=8181 i inst master kids
    start_redis "$prefix"
    ports=()
    local spids=()
    # Workers may drop to "nobody": they must reach their temp paths.
    chmod 711 "$dir"
    for i in 1 2; do
        port=$(free_port "$next")
        next=$((port + 1))
        inst=$dir/${prefix}nginx$i
        mkdir -p "$inst/tmp"
        chmod 755 "$inst" "$inst/tmp"
        sed -e "s|@NCHAN_MODULE@|$nchan_module|g" -e "s|@PREFIX@|$inst|g" \
            -e "s|@PORT@|$port|g" -e "s|@REDIS_PORT@|$redis_port|g" \
            config/nchan-bench.conf >"$inst/nginx.conf"
        "$nginx_bin" -p "$inst" -c "$inst/nginx.conf" -e "$inst/error.log" \
            >"$inst/stdout.log" 2>&1 &
        master=$!
        pids=("$master" "${pids[@]}")
        ports+=("$port")
        wait_nchan_ready "$port" "$master" "$inst" || return 1
        kids=$(cat "/proc/$master/task/$master/children" 2>/dev/null || true)
        # shellcheck disable=SC2206 # pids, split on blanks
        kids=($kids)
        if [[ ${#kids[@]} -ne 2 ]]; then
            echo "bench: nginx $i (pid $master) has ${#kids[@]} workers, want 2; see $inst" >&2
            return 1
        fi
        nginx_workers+=("${kids[@]}")
        spids+=("$master" "${kids[@]}")
    done
    nodes="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
    spids+=("$redis_pid")
    server_pids=$(IFS=,; echo "${spids[*]}")
}

machine="$(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
if [[ $compare == 0 ]]; then
    start_holdline ""
    echo "holdline bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $machine," \
        "holdline $(git rev-parse --short HEAD 2>/dev/null || echo '?'), scale $scale"
    echo "redis :$redis_port, nodes :${ports[0]} :${ports[1]}; every run's output in $dir"
else
    nchan_version=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')
    nginx_version=$("$nginx_bin" -v 2>&1 | sed 's|.*nginx/||')
    echo "holdline vs nchan bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $machine," \
        "holdline $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
        "nchan $nchan_version on nginx $nginx_version," \
        "$(redis-server --version | grep -o 'v=[0-9.]*' | sed 's/v=/redis /'), scale $scale"
    echo "every run's output in $dir"
fi

status=0

# run NAME MODE ARGS...: one holdline-bench run against $nodes (the server
# kind in $server); its RESULT line goes to $results.
run() {
    local name=$1
    shift
    local extra=()
    [[ $server == nchan ]] && extra=(--server nchan)
    echo "bench: $out_prefix$name: holdline-bench $* ${extra[*]:+${extra[*]} }-n $nodes" >&2
    local rc=0
    "$bench" "$@" "${extra[@]}" -n "$nodes" -q >"$dir/$out_prefix$name.out" \
        2>"$dir/$out_prefix$name.err" || rc=$?
    local line
    line=$(grep '^RESULT ' "$dir/$out_prefix$name.out" | tail -n 1 || true)
    [[ -n $line ]] || line="RESULT mode=$1 (none: see $dir/$out_prefix$name.err)"
    echo "$name exit=$rc ${line#RESULT }" >>"$results"
    [[ $rc -eq 0 ]] || status=1
}

# start_server PREFIX: fresh servers of the kind in $server.
start_server() {
    if [[ $server == nchan ]]; then start_nchan "$1"; else start_holdline "$1"; fi
}

# fresh_start ROW MODE PREFIX: stops the servers and starts fresh ones for
# ROW. If they do not start, ROW is recorded as failed and 1 returned, and
# the set goes on.
fresh_start() {
    stop_all
    start_server "$3" && return 0
    echo "bench: $out_prefix$1: the servers did not start; see $dir/$3*" >&2
    echo "$1 exit=1 mode=$2 (none: the servers did not start; see $dir/$3*)" >>"$results"
    status=1
    stop_all
    return 1
}

# The standard set of issue 5, on the servers already started. Hold goes
# first, on fresh nodes, so the memory it reports is the waiters' and not
# what earlier runs left.
standard_set() {
    if want hold; then run hold "hold" -c "$(scaled 15000)" -d "$duration" --pid "$server_pids"; fi
    if want fanout-1k fanout; then run fanout-1k "fanout" -c "$(scaled 1000)" -r 5; fi
    if want fanout-10k fanout; then run fanout-10k "fanout" -c "$(scaled 10000)" -r 5; fi
    if want fanout-1kx10 fanout; then
        run fanout-1kx10 "fanout" -c "$(scaled 10000)" -k "$(scaled 1000)" -r 5
    fi
    if want stream; then
        run stream "stream" -c "$(scaled 1000)" -k "$(scaled 100)" -m 10 -d "$duration"
    fi
    sse_set
    if want publish; then run publish "publish" -C 16 -w "$(scaled 1000)" -d "$duration"; fi
    if want sweep; then sweep; fi
    idle_cost
}

# The fan-out and stream runs over Server-Sent Events: each waiter opens one
# stream (holdline GET /events/<ch>; nchan's eventsource subscriber, the
# same location as its long-poll with Accept: text/event-stream) and keeps
# it, every message an event on it; latency from publish to the event.
sse_set() {
    local sse=(--transport sse)
    if want sse-fanout-1k sse-fanout sse; then
        run sse-fanout-1k "fanout" -c "$(scaled 1000)" -r 5 "${sse[@]}"
    fi
    if want sse-fanout-10k sse-fanout sse; then
        run sse-fanout-10k "fanout" -c "$(scaled 10000)" -r 5 "${sse[@]}"
    fi
    if want sse-fanout-1kx10 sse-fanout sse; then
        run sse-fanout-1kx10 "fanout" -c "$(scaled 10000)" -k "$(scaled 1000)" -r 5 "${sse[@]}"
    fi
    if want sse-stream sse; then
        run sse-stream "stream" -c "$(scaled 1000)" -k "$(scaled 100)" -m 10 -d "$duration" \
            "${sse[@]}"
    fi
}

# idle-cost: what held waiters cost a server that is busy elsewhere. The
# stream run (1,000 waiters over 100 channels at 10 msg/s per channel,
# 10,000 deliveries/s) beside 0, 15,000 and 30,000 idle waiters on 1,000
# channels nobody publishes to, held in the same holdline-bench run (its
# workers spread them over processes by the open-file limit). The servers'
# CPU is taken over the steady window only: after every idle waiter is
# held and every stream waiter has re-polled 20 times (the first 2 s of
# the stream, which runs BENCH_DURATION + 2 s for that). The idle polls ask for holdline's longest timeout (120 s; nchan
# holds them for its nchan_subscriber_timeout, 60 s), so they stay held
# through the run; idle_repolls counts those that timed out anyway.
idle_cost() {
    local spec name n args
    for spec in idle-0:0 idle-15k:15000 idle-30k:30000; do
        name=${spec%%:*}
        n=${spec#*:}
        want "$name" idle-cost || continue
        args=(stream -c "$(scaled 1000)" -k "$(scaled 100)" -m 10 -d "$((duration + 2))" -t 120
            --steady-polls 20 --pid "$server_pids")
        # scaled never gives 0, so idle-0 has no idle waiters at any scale.
        [[ $n -gt 0 ]] && args+=(-I "$(scaled "$n")" --idle-channels "$(scaled 1000)")
        run "$name" "${args[@]}"
    done
}

# hold-steady: the memory of waiters that keep receiving, as browsers on a
# live page do: 15,000 waiters over 1,000 channels at 1 msg/s per channel
# (each waiter answered about once a second and polling again on its
# keep-alive connection) for BENCH_STEADY_DURATION seconds. RSS growth per
# waiter is taken at the end, on servers that were fresh when the waiters
# opened, and only once every waiter has re-polled 5 times: a connection
# only touches all of its memory pool after a keep-alive request ends
# (libmicrohttpd clears the whole pool for the next one), so the first
# poll understates it. hold-steady-browser is the same with the requests a
# browser sends: ~700 bytes of Chrome's headers and a 2 KB Cookie header.
hold_steady() {
    local name args
    for name in hold-steady hold-steady-browser; do
        want "$name" hold-steady || continue
        fresh_start "$name" stream "${out_prefix}${name}-" || continue
        args=(stream -c "$(scaled 15000)" -k "$(scaled 1000)" -m 1 -d "$steady_duration"
            --steady-polls 5 --pid "$server_pids")
        [[ $name == hold-steady-browser ]] && args+=(--browser --cookie-bytes 2048)
        run "$name" "${args[@]}"
    done
}

# The stream sweep: the stream run's 1,000 waiters over 100 channels, with
# the per-channel publish rate raised step by step until a step is not
# sustained: under 95% of the deliveries per second its rate asks for (the
# server or its publishes fell behind), p99 at or over 100 ms, or any gap,
# duplicate or error. Every step's RESULT line goes to <prefix>sweep.steps;
# one line, mode=sweep, with the highest sustained step goes to $results.
sweep_rates=${BENCH_SWEEP_RATES:-10 20 40 60 80 100 130 160 200 250 320 400 500 640}
sweep_duration=${BENCH_SWEEP_DURATION:-5}
sweep() {
    local w k rate line ok=0 steps=0 best="" all saved_results=$results saved_status=$status
    w=$(scaled 1000)
    k=$(scaled 100)
    results=$dir/${out_prefix}sweep.steps
    : >"$results"
    for rate in $sweep_rates; do
        run "sweep-$rate" "stream" -c "$w" -k "$k" -m "$rate" -d "$sweep_duration"
        steps=$((steps + 1))
        line=$(tail -n 1 "$results")
        ok=$(awk -v want="$((rate * w))" '
function v(key,   i, kv) {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] }
    return ""
}
{ print ($2 == "exit=0" && v("gaps") == "0" && v("dups") == "0" && v("errors") == "0" &&
         v("p99_ms") != "" && v("p99_ms") + 0 < 100 &&
         v("deliveries_per_s") + 0 >= 0.95 * want) ? 1 : 0 }' <<<"$line")
        [[ $ok == 1 ]] || break
        best=$line
    done
    # Gaps and duplicates over every step, the failing one included.
    all=$(awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "=");
                   if (kv[1] == "gaps") g += kv[2]; if (kv[1] == "dups") d += kv[2] } }
               END { printf "gaps_all=%d dups_all=%d", g, d }' "$results")
    results=$saved_results
    # A step that falls behind ends the sweep; it does not fail the bench.
    # If none did, the server sustained the last rate tried, and maybe more.
    status=$saved_status
    [[ $ok == 1 ]] && all="$all ceiling=reached"
    if [[ -z $best ]]; then
        echo "sweep exit=1 mode=sweep steps=$steps $all (no step sustained: see $dir/${out_prefix}sweep.steps)" >>"$results"
        status=1
        return
    fi
    # The sustained step's numbers, with mode=sweep and the step count.
    echo "sweep exit=0 mode=sweep steps=$steps $all $(sed 's/^[^ ]* exit=0 mode=stream //' <<<"$best")" >>"$results"
}

# print_table RESULTS: the table of one server's set.
print_table() {
    awk '
function v(key,   i, kv) {
    for (i = 2; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == key) return kv[2]
    }
    return "-"
}
BEGIN {
    fmt = "%-19s %7s %6s %7s %7s %5s %5s %8s %8s %8s %8s %9s %9s %7s %6s %8s %6s %4s\n"
    printf fmt, "run", "waiters", "idle", "held", "got", "miss", "gaps", "p50 ms", "p90 ms",
        "p99 ms", "max ms", "rate/s", "B/waiter", "repolls", "cpu %", "us/deliv", "errors", "exit"
}
{
    w = v("waiters"); if (w == "-") w = v("bg_waiters")
    got = v("received"); if (got == "-") got = v("deliveries")
    rate = v("deliveries_per_s"); if (rate == "-") rate = v("publishes_per_s")
    miss = v("missing"); gaps = v("gaps")
    # The idle-cost rows run on servers earlier runs used, whose freed
    # memory the idle waiters reuse: their RSS growth is no cost per waiter.
    bpw = $1 ~ /^idle-/ ? "-" : v("per_waiter_bytes")
    split($2, e, "=")
    printf fmt, $1, w, v("idle_held"), v("held"), got, miss, gaps, v("p50_ms"), v("p90_ms"),
        v("p99_ms"), v("max_ms"), rate, bpw, v("min_repolls"),
        v("server_cpu_pct"), v("cpu_us_per_delivery"), v("errors"), e[2]
}' "$1"
}

# The CPU line under a table.
cpu_line() {
    awk '$1 == "hold" { for (i = 2; i <= NF; i++) if ($i ~ /^server_cpu_pct=/) { sub(/.*=/, "", $i); print $i "% of one core"; n++ } }
         END { if (!n) print "- (no hold run)" }' "$1"
}

# sse-idle: what an open SSE stream that receives nothing costs: 15,000
# streams over 1,000 channels nobody publishes to, held for
# BENCH_STEADY_DURATION seconds (longer than the 15 s heartbeat of both
# servers, so each stream has sent one) on servers that were fresh when
# they opened; the servers' RSS growth per stream at the end, and their CPU
# over the hold. A stream's request ends only when the stream does, so
# unlike a long-poll's first poll this is what a held stream costs.
sse_idle() {
    want sse-idle sse || return 0
    fresh_start sse-idle hold "${out_prefix}sse-idle-" || return 0
    run sse-idle "hold" -c "$(scaled 15000)" -k "$(scaled 1000)" -d "$steady_duration" \
        --transport sse --pid "$server_pids"
}

# The rows that need servers of their own, after the standard set.
fresh_server_rows() {
    hold_steady
    sse_idle
    stop_all
}

if [[ $compare == 0 ]]; then
    server=holdline out_prefix="" results=$dir/results
    : >"$results"
    standard_set
    fresh_server_rows

    echo
    print_table "$results"
    echo
    echo "server CPU while holding: $(cpu_line "$results")"
    echo "raw RESULT lines:"
    sed 's/^/  /' "$results"
    exit "$status"
fi

# --compare: holdline's set, everything stopped, then nchan's, each on its
# own fresh redis-server, so neither sees the other's load or leftovers.
server=holdline out_prefix="holdline-" results=$dir/results.holdline
: >"$results"
start_holdline "holdline-"
echo "holdline: redis :$redis_port, nodes :${ports[0]} :${ports[1]}" \
    "(pids $server_pids)"
standard_set
fresh_server_rows

server=nchan out_prefix="nchan-" results=$dir/results.nchan
: >"$results"
start_nchan
echo "nchan: redis :$redis_port, nginx :${ports[0]} :${ports[1]}" \
    "(pids $server_pids: masters, workers, redis)"
standard_set
fresh_server_rows

echo
echo "holdline (redis + 2 nodes):"
print_table "$dir/results.holdline"
echo "server CPU while holding: $(cpu_line "$dir/results.holdline")"
echo
echo "nchan (redis + 2 nginx x 2 workers):"
print_table "$dir/results.nchan"
echo "server CPU while holding: $(cpu_line "$dir/results.nchan")"
echo
echo "holdline vs nchan (ratio = holdline / nchan; \"better\" says which way is good):"
awk '
function v(line, key,   n, f, i, kv) {
    n = split(line, f, " ")
    for (i = 2; i <= n; i++) {
        split(f[i], kv, "=")
        if (kv[1] == key) return kv[2]
    }
    return "-"
}
function row(run, label, key, better,   a, b, r) {
    if (!(run in H) && !(run in N)) return
    a = (run in H) ? v(H[run], key) : "-"
    b = (run in N) ? v(N[run], key) : "-"
    # A metric neither run has (idle-0 has no idle waiters) is no row.
    if (a == "-" && b == "-") return
    r = (a != "-" && b != "-" && b + 0 != 0) ? sprintf("%.2f", a / b) : "-"
    printf fmt, run, label, a, b, r, better
}
BEGIN { fmt = "%-19s %-18s %12s %12s %8s %7s\n" }
FNR == 1 { file++ }
file == 1 { H[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++nrun] = $1 } }
file == 2 { N[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++nrun] = $1 } }
END {
    printf fmt, "run", "metric", "holdline", "nchan", "ratio", "better"
    for (i = 1; i <= nrun; i++) {
        run = order[i]
        mode = v((run in H) ? H[run] : N[run], "mode")
        if (run ~ /^hold-steady/) {
            row(run, "B/waiter", "per_waiter_bytes", "lower")
            row(run, "min re-polls", "min_repolls", "higher")
            row(run, "deliveries", "deliveries", "higher")
            row(run, "gaps", "gaps", "lower")
            row(run, "dups", "dups", "lower")
            row(run, "server CPU %", "server_cpu_pct", "lower")
            row(run, "cpu us/delivery", "cpu_us_per_delivery", "lower")
            row(run, "p99 ms", "p99_ms", "lower")
        } else if (run ~ /^idle-/) {
            row(run, "idle held", "idle_held", "higher")
            row(run, "server CPU %", "server_cpu_pct", "lower")
            row(run, "cpu us/delivery", "cpu_us_per_delivery", "lower")
            row(run, "deliveries/s", "deliveries_per_s", "higher")
            row(run, "gaps", "gaps", "lower")
            row(run, "dups", "dups", "lower")
            row(run, "p50 ms", "p50_ms", "lower")
            row(run, "p99 ms", "p99_ms", "lower")
            row(run, "idle re-polls", "idle_repolls", "lower")
        } else if (mode == "hold") {
            row(run, "held", "held", "higher")
            row(run, "B/waiter", "per_waiter_bytes", "lower")
            row(run, "server CPU %", "server_cpu_pct", "lower")
            row(run, "open s", "open_s", "lower")
        } else if (mode == "fanout") {
            row(run, "received", "received", "higher")
            row(run, "missing", "missing", "lower")
            row(run, "p50 ms", "p50_ms", "lower")
            row(run, "p99 ms", "p99_ms", "lower")
            row(run, "max ms", "max_ms", "lower")
        } else if (mode == "stream") {
            row(run, "deliveries/s", "deliveries_per_s", "higher")
            row(run, "gaps", "gaps", "lower")
            row(run, "dups", "dups", "lower")
            row(run, "p50 ms", "p50_ms", "lower")
            row(run, "p99 ms", "p99_ms", "lower")
        } else if (mode == "sweep") {
            row(run, "sustained rate", "rate", "higher")
            row(run, "deliveries/s", "deliveries_per_s", "higher")
            row(run, "p99 ms", "p99_ms", "lower")
            row(run, "gaps, all steps", "gaps_all", "lower")
            row(run, "dups, all steps", "dups_all", "lower")
        } else if (mode == "publish") {
            row(run, "publishes/s", "publishes_per_s", "higher")
            row(run, "p50 ms", "p50_ms", "lower")
            row(run, "p99 ms", "p99_ms", "lower")
        }
        if (v((run in H) ? H[run] : N[run], "transport") == "sse")
            row(run, "stream ends", "stream_ends", "-")
        row(run, "errors", "errors", "lower")
    }
}' "$dir/results.holdline" "$dir/results.nchan"
echo
echo "raw RESULT lines:"
sed 's/^/  holdline /' "$dir/results.holdline"
sed 's/^/  nchan    /' "$dir/results.nchan"
exit "$status"
