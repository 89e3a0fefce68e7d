#!/bin/sh
# Installs what `make bench-compare` needs on top of scripts/deps.sh: nginx
# and the nchan module (Debian 12: the packages nginx and
# libnginx-mod-nchan), if either is missing. Needs root (apt-get) only
# when something is missing; prints what it installs.
#
# Installing Debian's nginx would start the stock nginx service (port 80,
# every address). The bench starts its own instances on loopback, so the
# install runs with a policy-rc.d that refuses service starts (unless the
# machine already has one, which then decides).
set -eu

PKGS="nginx libnginx-mod-nchan"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "bench-compare deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-compare deps: not root; run: sudo apt-get install -y$missing" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\n# bench-compare-deps.sh: no service starts during its install\nexit 101\n' \
        >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # the list is meant to split into words
apt-get install -y -qq --no-install-recommends $missing >/dev/null

if [ "$made_policy" -eq 1 ]; then
    rm -f "$policy"
    trap - EXIT
fi
