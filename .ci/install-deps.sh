#!/usr/bin/env bash
# Installs what building and testing need, from Debian's packages, when missing.
# Idempotent: does nothing when everything is there.
set -euo pipefail

packages=(libcurl4-openssl-dev libssl-dev pkg-config openssl socat curl python3-venv ca-certificates binutils)
if [ "${WITH_BENCH:-0}" = 1 ]; then
    packages+=(nginx-light haproxy wrk)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
