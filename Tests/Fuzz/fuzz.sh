#!/usr/bin/env bash
# make fuzz: builds the HTTP1 libFuzzer target (with the getToken answer
# decoder, whose files in Sources/Iamport are pure Swift, and their unit of
# time, Sources/EventLoops/MonotonicClock.swift) and runs it for a bounded
# time (seconds, first argument) from the seed corpus beside this script.
# New inputs go to .build/fuzz/corpus (a build product, like the rest of
# .build); a crashing input is kept in .build/fuzz/.
set -uo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/../.."
out=.build/fuzz
seeds=Tests/Fuzz/corpus
mkdir -p "$out/corpus"
if ! swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name HTTP1Fuzz \
    Sources/HTTP1/*.swift Sources/Iamport/{TokenAnswer,Token,Secret}.swift Sources/EventLoops/MonotonicClock.swift \
    Tests/Fuzz/HTTP1Fuzz.swift \
    -o "$out/http1-fuzz" >"$out/build.log" 2>&1; then
    cat "$out/build.log"
    exit 1
fi
echo "fuzzing the HTTP1 parsers (request and answer heads), chunked decoder, path canonicaliser, getToken answer decoder and JSON string writer for ${seconds}s"
"$out/http1-fuzz" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$out/" "$out/corpus" "$seeds" >"$out/run.log" 2>&1
status=$?
grep -E "^Done [0-9]+ runs|==[0-9]+==ERROR|SUMMARY|^artifact_prefix|Test unit written" "$out/run.log"
if [ $status -ne 0 ]; then
    echo "fuzzing found a failure (exit $status); see $out/run.log"
    tail -n 40 "$out/run.log"
    exit 1
fi
