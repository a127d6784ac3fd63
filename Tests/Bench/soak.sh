#!/usr/bin/env bash
# make soak: release build, then Tests/Bench/soak.py (nginx and wrk from Debian).
# SOAK_PHASE1=20 SOAK_PHASE2=10 make soak for a quick run; Tests/Bench/soak.py
# lists the other settings.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --static-swift-stdlib --product iamport-proxy
exec python3 Tests/Bench/soak.py "$@"
