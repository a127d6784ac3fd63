#!/usr/bin/env bash
# Builds the HTTP1 libFuzzer target (with the getToken answer decoder, whose
# files in Sources/Iamport are pure Swift) and runs it for a bounded time
# (seconds, first argument) from the seed corpus in Fuzz/corpus. New inputs go to
# fuzz-build/corpus (ignored by git); a crashing input is kept in fuzz-build/.
set -uo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/.."
mkdir -p fuzz-build/corpus
if ! swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name HTTP1Fuzz \
    Sources/HTTP1/*.swift Sources/Iamport/{TokenAnswer,Token,Secret}.swift Fuzz/HTTP1Fuzz.swift \
    -o fuzz-build/http1-fuzz >fuzz-build/build.log 2>&1; then
    cat fuzz-build/build.log
    exit 1
fi
echo "fuzzing the HTTP1 parsers (request and answer heads), chunked decoder, path canonicaliser and getToken answer decoder for ${seconds}s"
fuzz-build/http1-fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix=fuzz-build/ fuzz-build/corpus Fuzz/corpus >fuzz-build/run.log 2>&1
status=$?
grep -E "^Done [0-9]+ runs|==[0-9]+==ERROR|SUMMARY|^artifact_prefix|Test unit written" fuzz-build/run.log
if [ $status -ne 0 ]; then
    echo "fuzzing found a failure (exit $status); see fuzz-build/run.log"
    tail -n 40 fuzz-build/run.log
    exit 1
fi
