#!/usr/bin/env bash
# make bench: release build, then Tests/Bench/bench.py (nginx, HAProxy, wrk from Debian).
# BENCH_SECONDS and BENCH_ROUNDS shorten a run (defaults 4 s and 4 rounds, about
# 10 minutes, 13 with a baseline); BENCH_BASELINE=/path/to/old/iamport-proxy measures
# a second binary in the same run, interleaved with this tree's.
# BENCH_PROXY_ENV / BENCH_BASELINE_ENV ("NAME=VALUE ...") add to either one's environment,
# so one binary can be measured against itself set differently.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --static-swift-stdlib --product iamport-proxy
exec python3 Tests/Bench/bench.py "$@"
