#!/bin/sh
# Installs the Debian packages holdline needs to build, test and run its
# demo, if any is missing. Needs root (apt-get) only when something is
# missing; prints what it installs.
set -eu

PKGS="build-essential pkg-config libmicrohttpd-dev libhiredis-dev libevent-dev
libconfig-dev libcmocka-dev redis-server redis-tools curl docker-compose"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: not root; run: sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # the list is meant to split into words
apt-get install -y -qq --no-install-recommends $missing >/dev/null
