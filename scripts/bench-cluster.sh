#!/usr/bin/env bash
# bench-cluster.sh -- how the Redis tier grows with masters: for a cluster
# of 1, 2 and 3 masters (no replicas, fresh each time, no persistence, on
# free loopback ports whose bus ports, +10000, are free too), publishes/s,
# deliveries/s and the CPU each master spends per publish, from four runs
# on each cluster:
#   redis       the Redis tier alone: one redis-cli --pipe per master sends
#               `FCALL holdline_publish 1 {holdline:t-<i>}:log <SIZE bytes>`
#               round the TIER_CHANNELS channels that master owns (the
#               slots read from CLUSTER KEYSLOT and CLUSTER NODES), as fast
#               as the master answers; nobody subscribed
#   redis+subs  the same with a node's two workers subscribed (SSUBSCRIBE)
#               to every one of those channels, so each SPUBLISH is written
#               to two subscriber links (polls with poll.linger_ms at 600 s
#               leave the subscriptions in place)
#   stream      through holdline: holdline-bench stream, SW waiters on SK
#               channels at SR messages/s per channel, through one node
#   publish     through holdline: holdline-bench publish, PC closed-loop
#               publishers over PK channels, through one node
# (the holdline-bench runs last D + 2 s; their window opens 0.5 s after
# their publishes reach the masters).
# The node (2 workers, redis.mode = cluster, every master as a seed) also
# loads the holdline library on every master (FUNCTION LOAD REPLACE), so
# the redis rows run the very source the node calls. Every figure is taken
# over a window of D seconds inside a run, by sampling before and after:
# each redis-server's and the node's utime+stime (/proc/<pid>/stat), each
# master's XADD calls (INFO commandstats: one per stored publish) and FCALL
# errors, and the machine's busy CPU (/proc/stat, all processes, so
# whatever else runs on the machine too). CPU per publish on a
# master is its CPU time over the XADDs it ran. redis-benchmark --cluster
# cannot drive this: it routes only keys with its literal {tag}, which it
# fills with 1- to 3-character tags, one slot per client (a 2-character
# one leaves `{ab}}:log`, which the library refuses), and it stops at the
# first MOVED.
#
# Usage: bench-cluster.sh [BINDIR]   (holdline and holdline-bench; bin)
# Environment: D=4 seconds per window, ROUNDS=2, MASTERS="1 2 3",
#   PORT_BASE=24000 (first port tried), TIER_CHANNELS=1000, SIZE=100 bytes
#   of data, SW=1000 SK=100 SR=50 (stream), PC=64 PK=100 (publish),
#   KEEP=1 keeps the run directory.
set -eu
cd "$(dirname "$0")/.."
bindir=${1:-bin}
me=bench-cluster
dir=$(mktemp -d /tmp/holdline-bench-cluster-XXXXXX)
pids=()
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then echo "$me: kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
D=${D:-4}
ROUNDS=${ROUNDS:-2}
MASTERS=${MASTERS:-1 2 3}
PORT_BASE=${PORT_BASE:-24000}
TIER_CHANNELS=${TIER_CHANNELS:-1000}
SIZE=${SIZE:-100}
SW=${SW:-1000} SK=${SK:-100} SR=${SR:-50}
PC=${PC:-64} PK=${PK:-100}
workers=2
for v in D ROUNDS PORT_BASE TIER_CHANNELS SIZE SW SK SR PC PK; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || { echo "$me: $v must be a whole number >= 1" >&2; exit 2; }
done
for m in $MASTERS; do
    [[ $m =~ ^[0-9]+$ && $m -ge 1 && $m -le 16 ]] || { echo "$me: MASTERS: '$m' is not 1 to 16" >&2; exit 2; }
done
for b in "$bindir/holdline" "$bindir/holdline-bench"; do
    [[ -x $b ]] || { echo "$me: $b is not built (run make)" >&2; exit 1; }
done
for t in redis-server redis-cli curl; do
    command -v "$t" >/dev/null || { echo "$me: needs $t" >&2; exit 1; }
done
hz=$(getconf CLK_TCK)
data=$(head -c "$SIZE" /dev/zero | tr '\0' x)

# Stops the pids given (kill, then wait for each) and drops them from pids,
# so that cleanup never signals a pid the system has handed out again.
stop() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
    forget "$@"
}

# Drops the pids given from pids once they have been waited for.
forget() {
    local q keep=()
    for q in "${pids[@]}"; do
        [[ " $* " == *" $q "* ]] || keep+=("$q")
    done
    pids=("${keep[@]}")
}

# A port from $1 up with nothing on it nor on its cluster bus port (+10000).
free_cluster_port() {
    local p=$1
    while :; do
        p=$(free_port "$p")
        [[ $(free_port $((p + 10000))) == $((p + 10000)) ]] && break
        p=$((p + 1))
    done
    echo "$p"
}

# Starts one cluster-enabled redis-server on a free port from $1 up, its
# files in $2; sets mport and mpid once it answers. A bus port (+10000)
# lies in the kernel's ephemeral range, where an outgoing connection may
# hold it without listening, so a server that cannot bind is tried again
# on the next port (at most 20 times).
master_start() {
    local p=$1 d=$2 pid
    mkdir -p "$d"
    for _ in $(seq 20); do
        p=$(free_cluster_port "$p")
        redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-config-file nodes.conf --dir "$d" --cluster-node-timeout 5000 \
            --save '' --appendonly no --repl-diskless-sync-delay 0 >"$d/log" 2>&1 &
        pid=$!
        pids+=("$pid")
        for _ in $(seq 200); do
            if redis-cli -p "$p" ping >/dev/null 2>&1; then
                mport=$p mpid=$pid
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        stop "$pid"
        echo "$me: redis-server on port $p: $(tail -n 1 "$d/log"); trying the next port" >&2
        rm -f "$d/nodes.conf"
        p=$((p + 1))
    done
    echo "$me: no redis-server would start; see $dir" >&2
    exit 1
}

# Starts a cluster of $1 masters, no replicas, the slots split evenly;
# sets mports and mpids. Waits up to 10 s for every master to say
# cluster_state:ok and to know all the others.
cluster_start() {
    local m=$1 i p=$PORT_BASE lo hi
    mports=() mpids=()
    for ((i = 0; i < m; i++)); do
        master_start "$p" "$dir/r$round-m$m-$i"
        mports+=("$mport")
        mpids+=("$mpid")
        p=$((mport + 1))
    done
    for ((i = 0; i < m; i++)); do
        lo=$((i * 16384 / m))
        hi=$(((i + 1) * 16384 / m - 1))
        redis-cli -p "${mports[i]}" cluster addslotsrange "$lo" "$hi" >/dev/null
        redis-cli -p "${mports[i]}" cluster set-config-epoch $((i + 1)) >/dev/null
    done
    for ((i = 1; i < m; i++)); do
        redis-cli -p "${mports[0]}" cluster meet 127.0.0.1 "${mports[i]}" >/dev/null
    done
    for _ in $(seq 200); do
        local ok=0
        for p in "${mports[@]}"; do
            redis-cli -p "$p" cluster info | tr -d '\r' |
                awk -v m="$m" -F: '$1 == "cluster_state" && $2 == "ok" { s = 1 }
                    $1 == "cluster_known_nodes" && $2 == m { k = 1 } END { exit !(s && k) }' &&
                ok=$((ok + 1))
        done
        [[ $ok == "$m" ]] && return 0
        sleep 0.05
    done
    echo "$me: the $m-master cluster did not come up; see $dir" >&2
    return 1
}

# Starts the node on the cluster (every master a seed) and waits for
# /readyz; checks that the library is on every master.
node_start() {
    local seeds p
    seeds=$(printf '127.0.0.1:%s,' "${mports[@]}")
    np=$(free_port $((mports[${#mports[@]} - 1] + 1)))
    HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_HTTP_WORKERS=$workers HOLDLINE_LOG_LEVEL=warn \
        HOLDLINE_REDIS_MODE=cluster HOLDLINE_REDIS_CLUSTER_NODES=${seeds%,} \
        HOLDLINE_POLL_LINGER_MS=600000 HOLDLINE_POLL_MAX_CHANNELS=256 \
        "$bindir/holdline" -p "$np" >"$dir/node-r$round-m$m.log" 2>&1 &
    npid=$!
    pids+=("$npid")
    wait_ready "$np"
    for p in "${mports[@]}"; do
        redis-cli -p "$p" function list libraryname holdline | grep -q holdline ||
            { echo "$me: the holdline library is not on the master at $p; see $dir" >&2; exit 1; }
    done
}

# utime + stime of pid $1, in clock ticks.
ticks() {
    local s
    s=$(<"/proc/$1/stat")
    s=${s##*) }
    # shellcheck disable=SC2086 # split into the fields after comm
    set -- $s
    echo $((${12} + ${13}))
}

# "xadd_calls fcall_errors fcall_calls" of the master on port $1.
cmdstats() {
    redis-cli -p "$1" info commandstats | tr -d '\r' | awk -F'[:,]' '
        $1 == "cmdstat_xadd" { split($2, a, "="); x = a[2] }
        $1 == "cmdstat_fcall" { for (i = 2; i <= NF; i++) { split($i, a, "=")
            if (a[1] == "calls") f = a[2]
            if (a[1] == "failed_calls" || a[1] == "rejected_calls") e += a[2] } }
        END { print x + 0, e + 0, f + 0 }'
}

# Sum of the XADD calls of every master.
xadds() {
    local p s=0 x e f
    for p in "${mports[@]}"; do
        read -r x e f < <(cmdstats "$p")
        s=$((s + x))
    done
    echo "$s"
}

# One sample of everything a window measures, into a_* or b_* ($1): t,
# nt, busy, tot and the per-master arrays mt (CPU ticks), mx (XADDs), me
# (FCALL errors) and mf (FCALLs).
a_t=0 a_nt=0 a_busy=0 a_tot=0 a_mt=() a_mx=() a_me=() a_mf=()
b_t=0 b_nt=0 b_busy=0 b_tot=0 b_mt=() b_mx=() b_me=() b_mf=()
# shellcheck disable=SC2034 # the arrays are set through the names
sample() {
    local n=$1 i x e f
    local -n t_=${n}_t mt_=${n}_mt mx_=${n}_mx me_=${n}_me mf_=${n}_mf nt_=${n}_nt busy_=${n}_busy tot_=${n}_tot
    t_=$(date +%s%N)
    nt_=$(ticks "$npid")
    for i in "${!mports[@]}"; do
        mt_[i]=$(ticks "${mpids[i]}")
        read -r x e f < <(cmdstats "${mports[i]}")
        mx_[i]=$x
        me_[i]=$e
        mf_[i]=$f
    done
    read -r busy_ tot_ < <(awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i
        print t - $5 - $6, t }' /proc/stat)
}

# Prints one row from the samples a and b: $1 the run, $2 deliveries/s
# (or -), $3 a note; appends its figures to $dir/rows for the summary.
row() {
    local run=$1 deliv=$2 note=$3 i dt dx dc tx=0 tc=0 err=0 tf=0 us="" pct="" npct box
    dt=$(((b_t - a_t) / 1000))
    for i in "${!mports[@]}"; do
        dx=$((b_mx[i] - a_mx[i]))
        dc=$((b_mt[i] - a_mt[i]))
        tx=$((tx + dx))
        tc=$((tc + dc))
        err=$((err + b_me[i] - a_me[i]))
        tf=$((tf + b_mf[i] - a_mf[i]))
        us+=$(awk -v c="$dc" -v x="$dx" -v hz="$hz" 'BEGIN {
            if (x > 0) printf "%.1f", c * 1e6 / hz / x; else printf "-" }')/
        pct+=$(awk -v c="$dc" -v dt="$dt" -v hz="$hz" 'BEGIN { printf "%.0f", c / hz * 1e8 / dt }')/
    done
    npct=$(awk -v c="$((b_nt - a_nt))" -v dt="$dt" -v hz="$hz" 'BEGIN { printf "%.0f", c / hz * 1e8 / dt }')
    box=$(awk -v b="$((b_busy - a_busy))" -v t="$((b_tot - a_tot))" 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }')
    local pubs
    pubs=$(awk -v x="$tx" -v dt="$dt" 'BEGIN { printf "%.0f", x * 1e6 / dt }')
    [[ $err -gt 0 ]] && note="$note; $err FCALL errors"
    # holdline_read (and refused calls): FCALLs that stored nothing
    [[ $((tf - tx)) -gt 0 ]] && note="$note; other FCALLs $(awk -v f="$((tf - tx))" -v dt="$dt" \
        'BEGIN { printf "%.0f", f * 1e6 / dt }')/s"
    note=${note#; }
    printf '%-7s %-4s %-10s %11s %12s  %-22s %-14s %5s%% %5s%%  %s\n' "$round" "$m" "$run" "$pubs" \
        "$deliv" "${us%/}" "${pct%/}" "$npct" "$box" "$note"
    echo "run=$run m=$m pubs=$pubs ticks=$tc xadds=$tx box=$box mcpu=$(awk -v c="$tc" -v dt="$dt" \
        -v hz="$hz" 'BEGIN { printf "%.0f", c / hz * 1e8 / dt }')" >>"$dir/rows"
}

# The tier runs' channels t-0 ... and, for each master, a file of RESP
# commands publishing once to each channel it owns (20 times over).
tier_prepare() {
    local i p
    for ((i = 0; i < TIER_CHANNELS; i++)); do echo "CLUSTER KEYSLOT {holdline:t-$i}:log"; done |
        redis-cli -p "${mports[0]}" >"$dir/slots"
    redis-cli -p "${mports[0]}" cluster nodes >"$dir/nodes"
    # channel index, slot, owner's port
    awk 'NR == FNR { split($2, a, /[:@]/)
            for (i = 9; i <= NF; i++) { n = split($i, r, "-"); if ($i ~ /^\[/) continue
                for (s = r[1]; s <= (n == 2 ? r[2] : r[1]); s++) owner[s] = a[2] }
            next }
        { if (!($1 in owner)) { print "slot " $1 " has no master" > "/dev/stderr"; exit 1 }
          print FNR - 1, $1, owner[$1] }' "$dir/nodes" "$dir/slots" >"$dir/chan"
    for p in "${mports[@]}"; do
        awk -v p="$p" -v d="$data" '$3 == p { ch[n++] = $1 }
            END { for (r = 0; r < 20; r++) for (i = 0; i < n; i++) { k = "{holdline:t-" ch[i] "}:log"
                printf "*5\r\n$5\r\nFCALL\r\n$16\r\nholdline_publish\r\n$1\r\n1\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
                    length(k), k, length(d), d } }' "$dir/chan" >"$dir/pub-$p"
    done
}

# Shard subscribers of the tier channels, summed over the masters.
tier_subscribers() {
    local p s=0 c
    for p in "${mports[@]}"; do
        # shellcheck disable=SC2046 # one argument per channel
        c=$(redis-cli -p "$p" pubsub shardnumsub $(awk -v p="$p" '$3 == p { print "holdline:t-" $1 }' "$dir/chan") |
            awk 'NR % 2 == 0 { s += $1 } END { print s + 0 }')
        s=$((s + c))
    done
    echo "$s"
}

# Subscribes both workers to every tier channel, with nothing published:
# polls of 250 channels each with a 1 s timeout, 4 connections per poll
# (the subscriptions stay for poll.linger_ms), until PUBSUB SHARDNUMSUB
# counts a subscriber per worker per channel (at most 5 tries).
tier_subscribe() {
    local s l args=()
    for ((s = 0; s < TIER_CHANNELS; s += 250)); do
        l=$(seq -s, -f 't-%g' "$s" $((s + 249 < TIER_CHANNELS - 1 ? s + 249 : TIER_CHANNELS - 1)))
        for _ in 1 2 3 4; do args+=(-o /dev/null "http://127.0.0.1:$np/poll/$l?timeout=1"); done
    done
    for _ in 1 2 3 4 5; do
        curl -sS -Z --parallel-max 64 "${args[@]}" 2>>"$dir/curl.log" || true
        [[ $(tier_subscribers) -ge $((workers * TIER_CHANNELS)) ]] && return 0
    done
    return 0
}

# Starts one redis-cli --pipe per master, each fed its file over and over
# through a fifo; sets feeders.
feeders_start() {
    local p
    feeders=()
    for p in "${mports[@]}"; do
        rm -f "$dir/fifo-$p"
        mkfifo -m 600 "$dir/fifo-$p"
        (while cat "$dir/pub-$p"; do :; done) >"$dir/fifo-$p" &
        pids+=($!)
        feeders+=($!)
        redis-cli -p "$p" --pipe <"$dir/fifo-$p" >>"$dir/pipe.log" 2>&1 &
        pids+=($!)
        feeders+=($!)
    done
}

# Waits (up to 30 s) until the masters have stored $1 more publishes.
wait_flow() {
    local base
    base=$(xadds)
    for _ in $(seq 300); do
        [[ $(xadds) -ge $((base + $1)) ]] && return 0
        sleep 0.1
    done
    echo "$me: no publishes reached the masters; see $dir" >&2
    return 1
}

# Runs holdline-bench ($@) for D + 2 s, the window of D s starting once
# its publishes flow; sets bout (its RESULT line) and brc (its status).
bench_window() {
    local bp
    "$bindir/holdline-bench" "$@" -n "127.0.0.1:$np" -d $((D + 2)) -q >"$dir/bench.out" 2>&1 &
    bp=$!
    pids+=("$bp")
    wait_flow 100
    sleep 0.5
    sample a
    sleep "$D"
    sample b
    brc=0
    wait "$bp" || brc=$?
    forget "$bp"
    bout=$(grep '^RESULT' "$dir/bench.out" || true)
    cat "$dir/bench.out" >>"$dir/bench-all.out"
    [[ -n $bout ]] || { cat "$dir/bench.out" >&2; exit 1; }
}

field() { tr ' ' '\n' <<<"$bout" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

echo "$me: $(nproc) cores shared by the masters, the node and the clients; redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
echo "windows of $D s; redis rows: one redis-cli --pipe per master over $TIER_CHANNELS channels, $SIZE-byte data;"
echo "stream: $SW waiters on $SK channels at $SR msg/s each; publish: $PC closed-loop publishers on $PK channels"
echo "one node with $workers workers; CPU per publish = the master's CPU time / the XADDs it ran"
echo
printf '%-7s %-4s %-10s %11s %12s  %-22s %-14s %6s %6s  %s\n' round masters run publishes/s deliveries/s \
    "us/publish per master" "master CPU %" node box note
: >"$dir/rows"
for round in $(seq "$ROUNDS"); do
    for m in $MASTERS; do
        echo "$SECONDS m=$m start" >>"$dir/phases"
        cluster_start "$m"
        node_start
        tier_prepare
        echo "$SECONDS m=$m redis" >>"$dir/phases"
        feeders_start
        wait_flow 1000
        sleep 0.5
        sample a
        sleep "$D"
        sample b
        row redis - ""
        stop "${feeders[@]}"
        echo "$SECONDS m=$m redis+subs" >>"$dir/phases"
        tier_subscribe
        subs=$(tier_subscribers)
        feeders_start
        wait_flow 1000
        sleep 0.5
        sample a
        sleep "$D"
        sample b
        after=$(tier_subscribers)
        stored=0
        for i in "${!mports[@]}"; do stored=$((stored + b_mx[i] - a_mx[i])); done
        deliv=$(awk -v s="$subs" -v c="$TIER_CHANNELS" -v x="$stored" -v dt="$(((b_t - a_t) / 1000))" \
            'BEGIN { printf "%.0f", x * s / c * 1e6 / dt }')
        note="$(awk -v s="$subs" -v c="$TIER_CHANNELS" 'BEGIN { printf "%.2f", s / c }') subscribers per channel"
        [[ $after == "$subs" ]] || note="$note ($after at the end)"
        row redis+subs "$deliv" "$note; deliveries = to subscriber links"
        stop "${feeders[@]}"
        echo "$SECONDS m=$m stream" >>"$dir/phases"
        bench_window stream -c "$SW" -k "$SK" -m "$SR" --pid "$npid"
        note="p99 $(field p99_ms) ms, gaps $(field gaps), errors $(field errors)"
        [[ $brc == 0 ]] || note="$note, exit $brc"
        row stream "$(field deliveries_per_s)" "$note"
        echo "$SECONDS m=$m publish" >>"$dir/phases"
        bench_window publish -C "$PC" -k "$PK"
        note="p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, errors $(field errors)"
        [[ $brc == 0 ]] || note="$note, exit $brc"
        row publish - "$note"
        stop "$npid" "${mpids[@]}"
        echo "$SECONDS m=$m end" >>"$dir/phases"
    done
done

# The model: per run kind, the masters' CPU per stored publish over every
# window of that kind (all masters, all rounds), and what one core gives.
echo
echo "CPU per publish on a master (all masters, rounds and sizes; min-max over windows),"
echo "and what one master would store on one core of its own at 100% (1e6 / us):"
awk -v hz="$hz" '{ for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
        r = v["run"]; T[r] += v["ticks"]; X[r] += v["xadds"]
        u = v["xadds"] ? v["ticks"] * 1e6 / hz / v["xadds"] : 0
        if (!(r in lo) || u < lo[r]) lo[r] = u; if (u > hi[r]) hi[r] = u
        if (!(r in seen)) { seen[r] = 1; order[n++] = r } }
    END { for (i = 0; i < n; i++) { r = order[i]; c = T[r] * 1e6 / hz / X[r]
        printf "  %-10s %5.1f us (%.1f-%.1f)  -> %7.0f publishes/s per master-core\n", r, c, lo[r], hi[r], 1e6 / c } }' \
    "$dir/rows"
echo "Measured, per cluster size (mean over rounds): publishes/s (all masters' CPU in % of a core; box busy %):"
awk '{ for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
        k = v["run"] " " v["m"]; s[k] += v["pubs"]; mc[k] += v["mcpu"]; bx[k] += v["box"]; c[k]++
        if (!(v["run"] in seen)) { seen[v["run"]] = 1; order[n++] = v["run"] }
        if (!(v["m"] in ms)) { ms[v["m"]] = 1; mo[nm++] = v["m"] } }
    END { for (i = 0; i < n; i++) { line = sprintf("  %-10s", order[i])
        for (j = 0; j < nm; j++) { k = order[i] " " mo[j]
            if (c[k]) line = line sprintf("  %s: %6.0f/s (%3.0f%%; %3.0f%%)", mo[j], s[k] / c[k],
                mc[k] / c[k], bx[k] / c[k]) }
        print line } }' "$dir/rows"
echo "$me: $SECONDS s"
