#!/bin/sh
# Runs the test binaries given after the holdline binary, from the repo
# root, each with a time limit, and ends with one summary line
# "N passed, N failed" counted from cmocka's own summaries (which cmocka
# prints on stderr), the browser test's own "N passed, N failed" line and
# the demo smoke run. A binary that crashes or prints no summary counts as
# one failure. Usage: run-tests.sh BIN/holdline TEST...
set -u

HOLDLINE_BIN=$1
shift
export HOLDLINE_BIN
[ -x "$HOLDLINE_BIN" ] || { echo "run-tests: $HOLDLINE_BIN is not built" >&2; exit 1; }

passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM

# count NAME RC PASSED FAILED: adds a part's counts to the totals; a part
# that exited non-zero without a failure of its own counts as one.
count() {
    p=${3:-0}
    f=${4:-0}
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "run-tests: $1 exited with $2 without a failed test; counting one failure"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

for t in "$@"; do
    echo "== $t"
    timeout 300 "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    count "$t" "$rc" \
        "$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p' "$out" | tail -n 1)" \
        "$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:.*/\1/p' "$out" | tail -n 1)"
done

# A real browser (Debian's Chromium through playwright-core, both
# installed by scripts/deps.sh) polls a node with cookie jars of growing
# size; its cases count like cmocka's. It bounds itself; timeout is the
# last resort. No summary line (a crash, a hang) counts as one failure.
echo "== tests/browser/run.sh"
timeout -k 10 150 bash tests/browser/run.sh "$HOLDLINE_BIN" >"$out" 2>&1
rc=$?
cat "$out"
summary=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$out" | tail -n 1)
count tests/browser/run.sh "$rc" "${summary% *}" "${summary#* }"

# The demo command must start everything, serve the page and stop cleanly.
echo "== make demo smoke run (scripts/demo.sh --for 4)"
if bash scripts/demo.sh "$HOLDLINE_BIN" --for 4 >"$out" 2>&1 &&
    grep -q "demo page: http://127.0.0.1:" "$out" && grep -q "everything stopped" "$out" &&
    grep -q "Client: Got response\|got response ok" "$out"; then
    passed=$((passed + 1))
    echo "[       OK ] demo starts, serves the page, answers polls and stops"
    # The demo keeps its logs for people; a passing smoke run needs none.
    demo_dir=$(sed -n 's/.*logs kept in \(\/tmp\/holdline-demo-[A-Za-z0-9]*\)).*/\1/p' "$out")
    [ -n "$demo_dir" ] && rm -rf "$demo_dir"
else
    failed=$((failed + 1))
    cat "$out"
    echo "[  FAILED  ] demo smoke run"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
