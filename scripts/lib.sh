# shellcheck shell=bash
# lib.sh -- shell helpers shared by demo.sh and bench.sh (bash; sourced).
# The sourcing script sets $dir (its run directory, named in messages) and
# $me (its name, prefixing messages).
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
