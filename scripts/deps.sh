#!/bin/sh
# Installs the Debian packages holdline needs to build, test and run its
# demo, if any is missing, and the npm package the browser test drives
# Chromium with (tests/browser). Needs root (apt-get) only when something
# is missing; prints what it installs.
set -eu

# chromium is Debian's build, driven by the browser test through
# playwright-core; Playwright's own browser downloads are not used.
# prometheus is there for its promtool, which the tests check /metrics and
# docs/holdline-alerts.yml with; its server is never started.
PKGS="build-essential pkg-config libmicrohttpd-dev libhiredis-dev libevent-dev
libconfig-dev libcmocka-dev libjwt-dev libjansson-dev libssl-dev openssl redis-server
redis-tools curl docker-compose chromium prometheus"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# Debian's nodejs and npm only when there is no node at all: a machine may
# have a newer Node.js from elsewhere, which Debian's npm package would
# conflict with.
if ! command -v node >/dev/null 2>&1; then
    missing="$missing nodejs"
fi
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi

if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: not root; run: sudo apt-get install -y$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Packages such as prometheus and redis-server start their service on
    # install; a policy-rc.d that exits 101 forbids that, so the install
    # leaves no daemon running. One the machine already has is its own and
    # is left alone; the one made here is removed after the install, or
    # when the script stops before.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        trap 'rm -f "$policy"' EXIT
        trap 'exit 1' HUP INT TERM
        printf '#!/bin/sh\n# made by holdline scripts/deps.sh for the install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    apt-get update -qq
    # shellcheck disable=SC2086 # the list is meant to split into words
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    if [ -n "$made_policy" ]; then
        rm -f "$policy"
        trap - EXIT HUP INT TERM
    fi
fi

# playwright-core at the version package-lock.json pins, into
# tests/browser/node_modules. A failure here does not stop the build or
# the demo: the browser test then fails and says why, so `make test`
# cannot pass without it.
browser_dir=$(dirname "$0")/../tests/browser
if [ ! -f "$browser_dir/node_modules/playwright-core/package.json" ]; then
    echo "deps: installing playwright-core into tests/browser/node_modules (npm ci)"
    if ! (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "deps: npm ci in tests/browser failed; the browser test will fail" >&2
    fi
fi
