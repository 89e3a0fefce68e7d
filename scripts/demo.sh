#!/usr/bin/env bash
# demo.sh -- runs a whole holdline setup on loopback: a private
# redis-server, three nodes and the demo publisher, and prints where to
# look. Ctrl-C (or SIGTERM) stops everything it started, by pid.
#
# Usage: demo.sh [BIN/holdline] [--for SECONDS]
#   --for SECONDS  stop by itself after that long (used by the test suite)
set -euo pipefail

bin=bin/holdline
run_for=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --for) run_for=$2; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) bin=$1; shift ;;
    esac
done
[[ -x $bin ]] || { echo "demo: $bin is not built (run make)" >&2; exit 1; }

dir=$(mktemp -d /tmp/holdline-demo-XXXXXX)
pids=()
# The pause the script is in, if any (see nap below).
sleep_pid=""

cleanup() {
    trap - EXIT INT TERM
    if [[ -n $sleep_pid ]]; then kill "$sleep_pid" 2>/dev/null || true; fi
    echo
    echo "demo: stopping"
    # The publisher first, then the nodes (SIGTERM: they answer their
    # waiters), then Redis.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "demo: everything stopped (logs kept in $dir)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Sleeps $1 seconds as a background job the script waits for: bash runs a
# trap only once the foreground command ends, but interrupts "wait" at
# once, so SIGTERM stops the demo promptly even mid-pause (a plain sleep
# held it for up to an hour). The cleanup kills the pause itself.
nap() {
    sleep "$1" &
    sleep_pid=$!
    wait "$sleep_pid"
    sleep_pid=""
}

me=demo
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

redis_start 6390 "$dir/redis.log"

ports=()
next=8081
for i in 1 2 3; do
    port=$(free_port "$next")
    next=$((port + 1))
    HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_NODE_NAME="demo-node$i" \
        "$bin" -c config/holdline.cfg -p "$port" --redis "127.0.0.1:$redis_port" \
        >"$dir/node$i.log" 2>&1 &
    pids=("$!" "${pids[@]}")
    ports+=("$port")
done
for port in "${ports[@]}"; do wait_ready "$port"; done

bash scripts/demo-publisher.sh --url "http://127.0.0.1:${ports[0]}" --channel demo \
    --interval-ms 3000 >"$dir/publisher.log" 2>&1 &
pids=("$!" "${pids[@]}")

cat <<EOF

holdline demo is running
  demo page: http://127.0.0.1:${ports[0]}/   (same page on :${ports[1]} and :${ports[2]})
  publish:   curl -d 'hello' http://127.0.0.1:${ports[1]}/publish/demo
  or Redis:  redis-cli -p $redis_port FCALL holdline_publish 1 '{holdline:demo}:log' 'hello'
             (plain, at most once: redis-cli -p $redis_port PUBLISH holdline:demo 'hello')
  poll:      curl 'http://127.0.0.1:${ports[2]}/poll/demo?timeout=10'
  logs:      $dir
Ctrl-C stops everything.
EOF

if [[ $run_for -gt 0 ]]; then
    # A self-check for the test suite: one poll on a node other than the
    # one the publisher uses must be answered, by an event or a timeout.
    body=$(curl -fsS "http://127.0.0.1:${ports[1]}/poll/demo?timeout=3")
    echo "demo: got response ok: $body"
    nap "$run_for"
    exit 0
fi
while true; do nap 3600; done
