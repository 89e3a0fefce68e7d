#!/usr/bin/env bash
# bench-auth.sh -- what verifying tokens costs (README "Private channels"):
# the stream benchmark (1,000 waiters following cursors on 100 channels,
# every answer followed by a re-poll on the same keep-alive connection)
# against redis + two nodes, once with auth off, once with HS256 tokens
# and once with ES256 tokens, every poll carrying its token. For each it
# prints the deliveries (= answered polls) per second at a few publish
# rates and the two nodes' CPU per delivery, so the cost of a poll with
# and without a token can be read side by side from one run.
#
# Last, tests/perf/perf_verify prints what one verification costs a worker
# by itself: on first sight of a token (libjwt checks its signature) and
# from the cache (a re-poll with the same token).
#
# Usage: bench-auth.sh [BINDIR]        (holdline and holdline-bench; bin)
# Environment: BENCH_AUTH_RATES="40 160 320" (per-channel messages/s),
#              BENCH_AUTH_DURATION=8 (seconds per step), BENCH_KEEP=1
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin}
holdline=$bindir/holdline
bench=$bindir/holdline-bench
rates=${BENCH_AUTH_RATES:-40 160 320}
duration=${BENCH_AUTH_DURATION:-8}
for b in "$holdline" "$bench"; do
    [[ -x $b ]] || { echo "bench-auth: $b is not built (run make)" >&2; exit 1; }
done

me=bench-auth
dir=$(mktemp -d /tmp/holdline-bench-auth-XXXXXX)
pids=()
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    if [[ ${BENCH_KEEP:-0} == 1 || $rc -ne 0 ]]; then echo "bench-auth: logs kept in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# A token for every channel, valid for an hour: HS256 with the secret, or
# ES256 with the private key file.
claims() { printf '{"exp":%d,"holdline":{"subscribe":["*"]}}' $(($(date +%s) + 3600)); }
mint_hs256() {
    local h p s
    h=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)
    p=$(claims | b64url)
    s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -hmac "$1" -binary | b64url)
    echo "$h.$p.$s"
}
# ES256 signs R || S (64 bytes), where openssl writes DER: take the two
# integers out of it.
mint_es256() {
    local h p der r s
    h=$(printf '%s' '{"alg":"ES256","typ":"JWT"}' | b64url)
    p=$(claims | b64url)
    der=$(printf '%s' "$h.$p" | openssl dgst -sha256 -sign "$1" | openssl asn1parse -inform DER |
        awk -F: '/INTEGER/ { print $NF }')
    r=$(sed -n 1p <<<"$der")
    s=$(sed -n 2p <<<"$der")
    printf '%s.%s.%s\n' "$h" "$p" "$(printf '%064s%064s' "$r" "$s" | tr ' ' 0 | xxd -r -p | b64url)"
}

secret=$(openssl rand -hex 32)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/rs.key" 2>/dev/null
openssl pkey -in "$dir/rs.key" -pubout -out "$dir/rs.pub"
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/es.key" 2>/dev/null
openssl ec -in "$dir/es.key" -pubout -out "$dir/es.pub" 2>/dev/null
key=$(openssl rand -hex 16)

# start MODE: redis + two nodes; sets nodes, server_pids.
start() {
    local env=(HOLDLINE_PUBLISH_KEY="$key") port next=8181 i
    case $1 in
    hs256) env+=(HOLDLINE_AUTH_MODE=jwt HOLDLINE_AUTH_JWT_KEY="$secret") ;;
    es256) env+=(HOLDLINE_AUTH_MODE=jwt HOLDLINE_AUTH_JWT_ALGORITHM=ES256
        HOLDLINE_AUTH_JWT_KEY_FILE="$dir/es.pub") ;;
    esac
    redis_start 6490 "$dir/$1-redis.log"
    local ports=() np=()
    for i in 1 2; do
        port=$(free_port "$next")
        next=$((port + 1))
        env "${env[@]}" HOLDLINE_HTTP_BIND=127.0.0.1 HOLDLINE_LOG_LEVEL=warn \
            "$holdline" -c config/holdline.cfg -p "$port" --redis "127.0.0.1:$redis_port" \
            >"$dir/$1-node$i.log" 2>&1 &
        pids+=("$!")
        np+=("$!")
        ports+=("$port")
    done
    for port in "${ports[@]}"; do wait_ready "$port"; done
    nodes="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
    node_pids="${np[0]},${np[1]}"
}

printf '%-6s %6s %14s %12s %10s %12s\n' auth rate deliveries/s "node CPU %" "us/deliv" p99_ms
for mode in off hs256 es256; do
    token=()
    case $mode in
    hs256) token=(--token "$(mint_hs256 "$secret")") ;;
    es256) token=(--token "$(mint_es256 "$dir/es.key")") ;;
    esac
    start "$mode"
    # The token must be good, or every poll would measure a 401.
    if [[ $mode != off ]]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${token[1]}" \
            "http://${nodes%%,*}/poll/x?timeout=1")
        [[ $code == 200 ]] || { echo "bench-auth: the $mode token got $code" >&2; exit 1; }
    fi
    for rate in $rates; do
        out=$("$bench" stream -n "$nodes" -c 1000 -k 100 -m "$rate" -d "$duration" \
            --key "$key" --pid "$node_pids" "${token[@]}" -q 2>"$dir/$mode-$rate.err" || true)
        line=$(grep '^RESULT ' <<<"$out" | tail -n 1)
        echo "$mode $rate $line" >>"$dir/results"
        awk -v mode="$mode" -v rate="$rate" '
function v(key,   i, kv) {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] }
    return ""
}
{ u = v("cpu_us_per_delivery");
  printf "%-6s %6s %14s %12s %10s %12s\n", mode, rate, v("deliveries_per_s"),
         v("server_cpu_pct"), u == "" ? "-" : u, v("p99_ms") }' <<<"$line"
    done
    stop_all
done

echo
make --no-print-directory -s build/release/tests/perf_verify >/dev/null
build/release/tests/perf_verify "$dir/rs.key" "$dir/rs.pub" "$dir/es.key" "$dir/es.pub"
