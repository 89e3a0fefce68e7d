#!/usr/bin/env bash
# demo-publisher.sh -- fires random demo events at a holdline channel.
#
# This is the seed's "events" script turned into a publisher: it sleeps a
# random time, uniform in [0, 2*INTERVAL) milliseconds, so events arrive on
# average every INTERVAL ms but sometimes after a poll's timeout, which shows
# both kinds of answer on the demo page. Then it publishes
# "After <N> millis - event fired!", where N is the time it slept.
#
# It publishes over HTTP (POST /publish/CHANNEL on a node or load balancer)
# or straight into Redis (FCALL holdline_publish, as any service would), and runs until it has
# sent --count events or gets SIGTERM/SIGINT.

set -euo pipefail

readonly PROG=${0##*/}

usage() {
    cat <<EOF
Usage: $PROG [options]

Publishes "After <N> millis - event fired!" to a holdline channel after
random pauses of N ms, N uniform in [0, 2*INTERVAL).

Where to publish (choose one; the default is --url http://127.0.0.1:8080):
  --url URL          POST to URL/publish/CHANNEL with curl (a node or the
                     load balancer, e.g. http://127.0.0.1:8080)
  --redis HOST:PORT  publish through Redis with redis-cli: FCALL holdline_publish
                     (durable, with an id; port defaults to 6379)

Options:
  --channel NAME     channel to publish to (default: demo)
  --prefix PREFIX    Redis channel prefix, as redis.prefix in the node's
                     config (default: holdline:); used with --redis only
  --interval-ms MS   mean pause between events in ms (default: 3000)
  --count N          stop after N events (default: 0 = run forever)
  --key KEY          send "Authorization: Bearer KEY" with --url, for nodes
                     with publish.key set (default: \$HOLDLINE_PUBLISH_KEY)
  -h, --help         show this help and exit

Stops cleanly on SIGTERM or SIGINT.
EOF
}

die() {
    printf '%s: %s\n' "$PROG" "$1" >&2
    exit 2
}

# Options that take a value accept both "--opt value" and "--opt=value".
need_value() {
    if [[ $# -lt 2 || -z $2 ]]; then
        die "option $1 needs a value (see --help)"
    fi
}

url=""
redis=""
channel="demo"
prefix="holdline:"
interval_ms=3000
count=0
key=${HOLDLINE_PUBLISH_KEY:-}

while [[ $# -gt 0 ]]; do
    case $1 in
    --*=*)
        # Split "--opt=value" into two words and parse it again.
        opt=${1%%=*}
        val=${1#*=}
        shift
        set -- "$opt" "$val" "$@"
        continue
        ;;
    --url) need_value "$@"; url=$2; shift 2 ;;
    --redis) need_value "$@"; redis=$2; shift 2 ;;
    --channel) need_value "$@"; channel=$2; shift 2 ;;
    --prefix) need_value "$@"; prefix=$2; shift 2 ;;
    --interval-ms) need_value "$@"; interval_ms=$2; shift 2 ;;
    --count) need_value "$@"; count=$2; shift 2 ;;
    --key) need_value "$@"; key=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# Validating up front turns a typo into one clear message instead of an
# error on every single publish.
if [[ -n $url && -n $redis ]]; then
    die "--url and --redis are mutually exclusive"
fi
if [[ -z $url && -z $redis ]]; then
    url="http://127.0.0.1:8080"
fi
if [[ ! $channel =~ ^[A-Za-z0-9._~:-]{1,200}$ ]]; then
    die "bad channel name: $channel (allowed: A-Z a-z 0-9 . _ ~ : -, 1..200 bytes)"
fi
if [[ ! $interval_ms =~ ^[0-9]+$ ]] || ((10#$interval_ms < 1 || 10#$interval_ms > 86400000)); then
    die "--interval-ms must be an integer from 1 to 86400000"
fi
if [[ ! $count =~ ^[0-9]+$ ]]; then
    die "--count must be a non-negative integer"
fi
# Leading zeros would make bash read "010" as octal.
interval_ms=$((10#$interval_ms))
count=$((10#$count))

if [[ -n $url ]]; then
    command -v curl >/dev/null || die "curl is needed for --url but is not installed"
    url=${url%/}
    target="$url/publish/$channel"
else
    command -v redis-cli >/dev/null || die "redis-cli is needed for --redis but is not installed (Debian: redis-tools)"
    if [[ $redis =~ ^\[(.*)\]:([0-9]+)$ ]]; then
        redis_host=${BASH_REMATCH[1]}
        redis_port=${BASH_REMATCH[2]}
    elif [[ $redis =~ ^([^:]+):([0-9]+)$ ]]; then
        redis_host=${BASH_REMATCH[1]}
        redis_port=${BASH_REMATCH[2]}
    elif [[ $redis =~ ^[^:]+$ ]]; then
        redis_host=$redis
        redis_port=6379
    else
        die "--redis wants HOST:PORT, HOST or [IPv6]:PORT, not $redis"
    fi
    target="redis $redis_host:$redis_port channel $prefix$channel"
fi

# The pause runs as a background job that the script waits for, because bash
# defers a trapped signal until a foreground command ends but interrupts
# "wait" at once; so SIGTERM stops the script promptly, even mid-pause.
sleep_pid=""
on_signal() {
    if [[ -n $sleep_pid ]]; then
        kill "$sleep_pid" 2>/dev/null || true
    fi
    printf '%s: stopping after %d event(s)\n' "$PROG" "$sent"
    exit 0
}
sent=0
trap on_signal TERM INT

# Prints a random integer in [0, n). $RANDOM has only 15 bits, so two draws
# are combined to cover intervals longer than 32767 ms; the modulo bias of
# 30 bits over at most 2*86400000 values is negligible for a demo.
random_below() {
    local n=$1
    echo $(((RANDOM << 15 | RANDOM) % n))
}

publish_http() {
    local msg=$1 out status body
    local -a args=(-sS --max-time 10 -X POST
        -H 'Content-Type: text/plain; charset=utf-8'
        --data-binary @- -w '\n%{http_code}' "$target")
    if [[ -n $key ]]; then
        args=(-H "Authorization: Bearer $key" "${args[@]}")
    fi
    # The message goes through stdin so that curl never treats a leading
    # "@" in it as a file name.
    if out=$(printf '%s' "$msg" | curl "${args[@]}" 2>&1); then
        status=${out##*$'\n'}
        body=${out%$'\n'*}
        printf 'published "%s" -> HTTP %s %s\n' "$msg" "$status" "$body"
        if [[ $status != 2* ]]; then
            printf '%s: publish failed with HTTP %s, going on\n' "$PROG" "$status" >&2
        fi
    else
        # The last line is the status curl writes even on failure (000).
        out=${out%$'\n'*}
        printf '%s: publish failed: %s, going on\n' "$PROG" "${out//$'\n'/ }" >&2
    fi
}

publish_redis() {
    local msg=$1 out
    if out=$(redis-cli -h "$redis_host" -p "$redis_port" FCALL holdline_publish 1 \
        "{$prefix$channel}:log" "$msg" 2>&1) && [[ $out =~ ^[0-9]+-[0-9]+$ ]]; then
        printf 'published "%s" -> id %s\n' "$msg" "$out"
    else
        printf '%s: publish failed: %s, going on\n' "$PROG" "${out//$'\n'/ }" >&2
    fi
}

limit="until stopped"
if ((count == 1)); then
    limit="1 event"
elif ((count > 1)); then
    limit="$count events"
fi
printf '%s: publishing to %s, one event every %d ms on average, %s\n' \
    "$PROG" "$target" "$interval_ms" "$limit"

while ((count == 0 || sent < count)); do
    delay_ms=$(random_below $((2 * interval_ms)))
    sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))" &
    sleep_pid=$!
    wait "$sleep_pid" || true
    sleep_pid=""

    msg="After $delay_ms millis - event fired!"
    if [[ -n $url ]]; then
        publish_http "$msg"
    else
        publish_redis "$msg"
    fi
    sent=$((sent + 1))
done

printf '%s: sent %d event(s), done\n' "$PROG" "$sent"
