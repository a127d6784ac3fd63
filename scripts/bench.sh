#!/usr/bin/env bash
# make bench: release build, then bench/bench.py (nginx, HAProxy, wrk from Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product iamport-proxy
exec python3 bench/bench.py "$@"
