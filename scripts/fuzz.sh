#!/bin/sh
# Runs the libFuzzer targets of fuzz/ one after the other, each for
# $FUZZ_SECONDS seconds in one process, and ends with one summary line
# "N passed, N failed" (one count per target). A target that crashes,
# breaks a checked promise, leaks, times out (-timeout=5) or grows past
# 2 GB fails; the input that did it is copied into fuzz/crashes/<target>/,
# where `make fuzz-regress` runs it from then on.
#
# Each fuzzer works on a temporary copy of fuzz/corpus/<target>/ and
# writes its findings to a temporary directory, so the repository changes
# only by new files in fuzz/crashes/.
#
#   sh scripts/fuzz.sh [TARGET...]             fuzz (default: every target)
#   sh scripts/fuzz.sh --regress [TARGET...]   run each target once over its
#                                              corpus and over its crash files
#
# Environment: FUZZ_SECONDS (default 20), FUZZ_CC (default clang),
# FUZZ_KEEP=1 keeps the temporary directory (grown corpora, logs).
#
# Installs what it needs to build if missing (as scripts/deps.sh does):
# a clang that can link -fsanitize=fuzzer and the libraries' headers.
set -u
cd "$(dirname "$0")/.." || exit 1

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_CC=${FUZZ_CC:-clang}
FUZZ_KEEP=${FUZZ_KEEP:-}
MAKE=${MAKE:-make}
mode=fuzz
if [ "${1:-}" = "--regress" ]; then
    mode=regress
    shift
fi
targets=${*:-request cursor frame config peek rreply token}

case $FUZZ_SECONDS in
'' | *[!0-9]*)
    echo "fuzz: FUZZ_SECONDS must be whole seconds, not '$FUZZ_SECONDS'" >&2
    exit 2
    ;;
esac
for t in $targets; do
    [ -f "fuzz/fuzz_$t.c" ] || {
        echo "fuzz: no target '$t' (fuzz/fuzz_$t.c)" >&2
        exit 2
    }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/holdline-fuzz.XXXXXX") || exit 1
if [ -n "$FUZZ_KEEP" ]; then
    trap 'echo "fuzz: kept $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
trap 'exit 130' INT TERM

# ---- Toolchain ------------------------------------------------------------

# Debian's clang only recommends the libFuzzer runtime, and deps.sh
# installs without recommends, so the probe links a real fuzzer.
can_link_fuzzer() {
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$work/probe.c"
    "$FUZZ_CC" -fsanitize=fuzzer,address,undefined -o "$work/probe" "$work/probe.c" \
        >/dev/null 2>&1
}

pkgs="pkg-config libmicrohttpd-dev libhiredis-dev libevent-dev libconfig-dev libjansson-dev libjwt-dev libssl-dev"
can_link_fuzzer || pkgs="$pkgs clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "fuzz: installing:$missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "fuzz: not root; run: sudo apt-get install -y$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null || exit 1
    # shellcheck disable=SC2086 # the list is meant to split into words
    apt-get install -y -qq --no-install-recommends $missing </dev/null >/dev/null || exit 1
fi
can_link_fuzzer || {
    echo "fuzz: $FUZZ_CC cannot link -fsanitize=fuzzer (set FUZZ_CC to a clang with libFuzzer)" >&2
    exit 1
}

"$MAKE" --no-print-directory fuzz-build FUZZ_CC="$FUZZ_CC" </dev/null || exit 1

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

# ---- Runs -------------------------------------------------------------------

passed=0
failed=0

# Prints the lines of a log that say what went wrong.
report() {
    grep -E 'ERROR: |runtime error|broken promise|SUMMARY: |Test unit written|fuzz target exited' \
        "$1" | head -n 12 | sed 's/^/    /'
}

# Copies the crash, leak, timeout and oom inputs of dir $1 into
# fuzz/crashes/$2/ and says where they came from and went.
keep_findings() {
    for f in "$1"/crash-* "$1"/leak-* "$1"/timeout-* "$1"/oom-*; do
        [ -f "$f" ] || continue
        mkdir -p "fuzz/crashes/$2"
        cp "$f" "fuzz/crashes/$2/"
        echo "    input saved to $f, copied to fuzz/crashes/$2/$(basename "$f")"
    done
}

fuzz_one() {
    t=$1
    corpus=$work/corpus/$t
    art=$work/artifacts/$t
    log=$work/$t.log
    mkdir -p "$corpus" "$art"
    for f in fuzz/corpus/"$t"/*; do
        [ -f "$f" ] && cp "$f" "$corpus/"
    done
    seeds=$(find "$corpus" -type f | wc -l)

    set -- -max_total_time="$FUZZ_SECONDS" -timeout=5 -rss_limit_mb=2048 \
        -artifact_prefix="$art/" -print_final_stats=1
    [ -f "fuzz/$t.dict" ] && set -- "$@" -dict="fuzz/$t.dict"
    start=$(date +%s)
    "build/fuzz/fuzz_$t" "$@" "$corpus" </dev/null >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))

    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
    size=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -eq 0 ] && [ -n "$done_line" ]; then
        passed=$((passed + 1))
        echo "fuzz_$t: passed: $done_line; corpus $seeds -> $size files; ${cov:-no coverage line}"
    else
        failed=$((failed + 1))
        echo "fuzz_$t: FAILED (exit $rc) after ${runs:-?} runs in $secs s; corpus $seeds -> $size files"
        report "$log"
        keep_findings "$art" "$t"
    fi
}

# One run over the corpus, then one per crash file, so that an old crash
# that still crashes does not hide the others.
regress_one() {
    t=$1
    art=$work/artifacts/$t
    log=$work/$t.log
    mkdir -p "$art"
    bad=0
    n=0
    set --
    for f in fuzz/corpus/"$t"/*; do
        [ -f "$f" ] && set -- "$@" "$f"
    done
    n=$#
    if [ $# -gt 0 ]; then
        "build/fuzz/fuzz_$t" -timeout=5 -rss_limit_mb=2048 -artifact_prefix="$art/" "$@" \
            </dev/null >"$log" 2>&1 || {
            bad=1
            echo "fuzz_$t: FAILED on its corpus (fuzz/corpus/$t/)"
            report "$log"
        }
    fi
    for f in fuzz/crashes/"$t"/*; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        "build/fuzz/fuzz_$t" -timeout=5 -rss_limit_mb=2048 -artifact_prefix="$art/" "$f" \
            </dev/null >"$log" 2>&1 || {
            bad=1
            echo "fuzz_$t: FAILED on $f"
            report "$log"
        }
    done
    if [ "$bad" -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz_$t: passed: $n inputs"
    else
        failed=$((failed + 1))
    fi
}

for t in $targets; do
    if [ "$mode" = regress ]; then regress_one "$t"; else fuzz_one "$t"; fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
