# shellcheck shell=bash
# lib.sh -- shell helpers shared by demo.sh, bench.sh and the browser test
# (bash; sourced). The sourcing script sets $dir (its run directory, named
# in messages and holding Redis's files), $me (its name, prefixing
# messages) and the array pids (what its cleanup stops).
# shellcheck disable=SC2154 # dir and me come from the sourcing script

# A port nothing listens on, from $1 upwards.
free_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}

# Waits up to 10 s for the node on port $1 to answer /readyz with 200.
wait_ready() {
    for _ in $(seq 200); do
        curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "$me: node on port $1 did not become ready; see $dir" >&2
    return 1
}

# Starts a private redis-server (loopback, no persistence, files in $dir)
# on a free port from $1 up, logging to $2, and waits up to 10 s for it to
# answer; sets redis_port and redis_pid and adds the pid to pids.
redis_start() {
    redis_port=$(free_port "$1")
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" >"$2" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 200); do
        redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
}
