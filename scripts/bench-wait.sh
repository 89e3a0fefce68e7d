#!/usr/bin/env bash
# bench-wait.sh -- what publish.wait_replicas costs: publishes per second
# through one node (2 workers) with wait_replicas 0 and 1, against a
# private redis-server master with one replica (redis-server --replicaof),
# all on free loopback ports. holdline-bench's closed-loop publish mode:
# C publishers on keep-alive connections, each sending its next publish
# when the last is answered, for D seconds. The two settings alternate,
# ROUNDS times, so machine noise hits both alike.
#
# Usage: bench-wait.sh [BINDIR]   (holdline and holdline-bench; bin)
# Environment: C=64 publishers, D=10 seconds, ROUNDS=2.
set -eu
cd "$(dirname "$0")/.."
bindir=${1:-bin}
me=bench-wait
dir=$(mktemp -d /tmp/holdline-bench-wait-XXXXXX)
pids=()
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
npid=""
cleanup() {
    for p in $npid "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
C=${C:-64}
D=${D:-10}
ROUNDS=${ROUNDS:-2}
redis_start 7531 "$dir/master.log"
mp=$redis_port
rp=$(free_port $((mp + 1)))
mkdir -p "$dir/replica"
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/replica" \
    --replicaof 127.0.0.1 "$mp" >"$dir/replica.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
    redis-cli -p "$mp" info replication | grep -q 'slave0:.*state=online' && break
    sleep 0.05
done
redis-cli -p "$mp" info replication | grep -q 'slave0:.*state=online' ||
    { echo "$me: the replica did not come online; see $dir" >&2; exit 1; }
np=$(free_port $((rp + 1)))

# Runs one node with wait_replicas $1 and the publish benchmark against it;
# prints "wait_replicas=N publishes/s=... p50_ms=... p99_ms=...".
run() {
    HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_HTTP_WORKERS=2 HOLDLINE_LOG_LEVEL=warn \
        HOLDLINE_PUBLISH_WAIT_REPLICAS="$1" "$bindir/holdline" -p "$np" --redis "127.0.0.1:$mp" \
        >"$dir/node-$1.log" 2>&1 &
    npid=$!
    wait_ready "$np"
    "$bindir/holdline-bench" publish -n "127.0.0.1:$np" -C "$C" -d "$D" -q >"$dir/bench.out" 2>&1 ||
        { cat "$dir/bench.out" >&2; exit 1; }
    kill "$npid"
    wait "$npid" 2>/dev/null || true
    npid=""
    grep '^RESULT' "$dir/bench.out" | tr ' ' '\n' |
        awk -v w="$1" -F= '{ v[$1] = $2 }
            END { printf "wait_replicas=%s %s publishes/s, round trip p50 %s ms, p99 %s ms, errors %s\n",
                  w, v["publishes_per_s"], v["p50_ms"], v["p99_ms"], v["errors"] }'
}

echo "one node (2 workers), master + 1 replica, $C closed-loop publishers, $D s each"
for _ in $(seq "$ROUNDS"); do
    run 0
    run 1
done
