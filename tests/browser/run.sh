#!/usr/bin/env bash
# run.sh -- the browser tests: starts a private redis-server and one
# holdline node (node B) on free loopback ports, runs test_cookies.mjs
# (Debian's Chromium through playwright-core) against the node's demo page,
# test_demo.mjs (the demo page with either transport), test_restart.mjs
# (a page subscribed on a node A that it starts and restarts itself, while
# it publishes on node B) and test_auth.mjs (holdline.js with tokens,
# against two nodes with auth.mode = "jwt" that it starts itself), and
# stops everything it started, by pid, whatever happens.
#
# Usage: tests/browser/run.sh [BIN/holdline]   (default: $HOLDLINE_BIN,
#        then bin/holdline; run from anywhere)
# Prints one line per case and ends with "N passed, N failed"; exits
# non-zero on any failure. A missing Chromium or playwright-core is a
# failure, not a skip: scripts/deps.sh installs both.
set -eu

cd "$(dirname "$0")/../.."
bin=${1:-${HOLDLINE_BIN:-bin/holdline}}

# A missing piece is reported in the same shape as a failed case, so the
# suite's summary counts it.
fail_setup() {
    echo "[  FAILED  ] browser test: $1"
    echo "0 passed, 1 failed"
    exit 1
}
[[ -x $bin ]] || fail_setup "$bin is not built"
[[ -x /usr/bin/chromium ]] || fail_setup "/usr/bin/chromium is missing (scripts/deps.sh installs Debian's chromium)"
command -v node >/dev/null 2>&1 || fail_setup "node is missing (scripts/deps.sh installs it)"
[[ -f tests/browser/node_modules/playwright-core/package.json ]] ||
    fail_setup "playwright-core is missing in tests/browser/node_modules (scripts/deps.sh runs npm ci there)"

dir=$(mktemp -d /tmp/holdline-browser-XXXXXX)
pids=()
# test_restart.mjs keeps the pid of the node A it runs in the first file,
# test_auth.mjs those of its two nodes in the others.
node_pidfiles=("$dir/node-a.pid" "$dir/node-auth-1.pid" "$dir/node-auth-2.pid")

browser_pid=""

# shellcheck disable=SC2317 # run by the EXIT trap, which shellcheck does not follow
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    # The browser part first: SIGTERM reaches node through timeout, and
    # playwright-core then closes Chromium.
    if [[ -n $browser_pid ]]; then
        kill -TERM "$browser_pid" 2>/dev/null || true
        wait "$browser_pid" 2>/dev/null || true
    fi
    # Chromium runs in its own process group (playwright-core starts it
    # detached), so if node died before closing it, its processes are
    # found by this run's own profile directory, which no other process
    # names.
    for pid in $(pgrep -f -- "--user-data-dir=$dir/" 2>/dev/null || true); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    # A node left behind by a test_restart.mjs or test_auth.mjs that was
    # killed: it is not this shell's child, so it is stopped by its pid
    # and waited for by polling.
    for pidfile in "${node_pidfiles[@]}"; do
        [[ -s $pidfile ]] || continue
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Then the node (SIGTERM: it answers its waiters), then Redis.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $rc -eq 0 ]]; then
        rm -rf "$dir"
    else
        # The node's log (ASan reports among others) helps with a failure;
        # the profile does not.
        rm -rf "$dir/profile" "$dir/tmp"
        echo "browser test: logs kept in $dir"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

me=browser-test
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

redis_start 6490 "$dir/redis.log"

port=$(free_port 8481)
env HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_LOG_LEVEL=warn HOLDLINE_NODE_NAME=browser-test \
    "$bin" -c config/holdline.cfg -p "$port" --redis "127.0.0.1:$redis_port" \
    >"$dir/node.log" 2>&1 &
pids=("$!" "${pids[@]}")
if ! wait_ready "$port"; then
    # Its last words usually say why (a configuration error, a crash).
    tail -n 5 "$dir/node.log"
    fail_setup "the node on port $port did not become ready (log: $dir/node.log)"
fi

passed=0
failed=0

# run_browser NAME BOUND_S ARGS...: runs tests/browser/NAME with node
# under timeout BOUND_S, prints its case lines (without its summary) and
# adds its counts; a run that ends without a summary, or non-zero without
# a failed case, counts as one failure.
#
# playwright-core keeps its own temporary files below TMPDIR, and
# Chromium its crash database and caches below the XDG directories, all in
# this run's directory, removed at the end, instead of in $HOME. timeout
# bounds the whole browser part even if node's own bound fails; SIGTERM
# lets playwright-core close Chromium. It runs in the background so that a
# signal to this script is handled at once rather than after node ends.
run_browser() {
    local name=$1 bound=$2 out=$dir/${1%.mjs}.out
    shift 2
    mkdir -p "$dir/tmp"
    TMPDIR="$dir/tmp" XDG_CONFIG_HOME="$dir/tmp" XDG_CACHE_HOME="$dir/tmp" \
        timeout -k 5 "$bound" node "tests/browser/$name" "$@" >"$out" 2>&1 &
    browser_pid=$!
    local rc=0
    wait "$browser_pid" || rc=$?
    # Reaped: its pid must not be signalled again by cleanup.
    browser_pid=""

    # The cases' lines, without their summary: this script prints the
    # summary of all.
    grep -v '^[0-9]* passed, [0-9]* failed$' "$out" || true
    local summary p f
    summary=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$out" | tail -n 1)
    if [[ -n $summary ]]; then
        p=${summary% *}
        f=${summary#* }
    else
        p=0
        f=1
        echo "[  FAILED  ] browser test: $name ended ($rc) without a summary"
    fi
    if [[ $rc -ne 0 && $f -eq 0 ]]; then
        f=1
        echo "[  FAILED  ] browser test: $name exited with $rc without a failed case"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

run_browser test_cookies.mjs 90 "http://127.0.0.1:$port/"
run_browser test_demo.mjs 50 "http://127.0.0.1:$port/"

# Node A's port; the script starts the node itself, with the same binary,
# configuration and Redis, and publishes on this run's node (B). Node A is
# down for seconds at a time, and holdline binds with SO_REUSEPORT, so any
# other test picking a free port could start listening on it meanwhile:
# the port is drawn from 20000-29999, away from the 8xxx ports the other
# scripts start from and below the kernel's ephemeral range.
port_a=$(free_port $((20000 + RANDOM % 10000)))
run_browser test_restart.mjs 120 "$bin" "$port_a" "$redis_port" "http://127.0.0.1:$port" "$dir"

# The auth nodes' ports (test_auth.mjs starts both nodes, on this run's
# Redis, and stops them).
port_auth1=$(free_port 8581)
port_auth2=$(free_port $((port_auth1 + 1)))
run_browser test_auth.mjs 70 "$bin" "$port_auth1" "$port_auth2" "$redis_port" "$dir"

# Like the integration tests: the node must stop cleanly on SIGTERM and
# leave no sanitizer or crash report in its log (big requests are where a
# parser would overrun), within 10 s.
node_pid=${pids[0]}
kill -TERM "$node_pid" 2>/dev/null || true
for _ in $(seq 200); do
    kill -0 "$node_pid" 2>/dev/null || break
    sleep 0.05
done
kill -KILL "$node_pid" 2>/dev/null || true
node_rc=0
wait "$node_pid" || node_rc=$?
if [[ $node_rc -eq 0 ]] &&
    ! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|Assertion' "$dir/node.log"; then
    passed=$((passed + 1))
    echo "[       OK ] the node stopped cleanly, no sanitizer or crash report in its log"
else
    failed=$((failed + 1))
    echo "[  FAILED  ] the node exited with $node_rc or left a sanitizer or crash report in $dir/node.log:"
    grep -E 'AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|Assertion|SUMMARY' "$dir/node.log" | head -n 5 || true
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
