#!/usr/bin/env bash
# make demo: the fake iamport API and the proxy on 127.0.0.1, one call through
# them, and what the proxy did with the token. Stops both at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug
work=$(mktemp -d)
cleanup() {
    [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "${fake_pid:-}" ] && kill "$fake_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port_of() { # waits for "listening on HOST:PORT" in a log, prints PORT
    for _ in $(seq 100); do
        line=$(grep -o 'listening on [^ ]*' "$1" 2>/dev/null | head -n1 || true)
        if [ -n "$line" ]; then echo "${line##*:}"; return 0; fi
        sleep 0.1
    done
    echo "no 'listening on' line in $1:" >&2; cat "$1" >&2; return 1
}

"$bin/fake-iamport" --listen 127.0.0.1:0 --api-key demo-key --api-secret demo-secret >"$work/fake.log" 2>&1 &
fake_pid=$!
fake_port=$(port_of "$work/fake.log")
echo "== fake iamport API on 127.0.0.1:$fake_port"

IAMPORT_API_KEY=demo-key IAMPORT_API_SECRET=demo-secret \
    "$bin/iamport-proxy" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$fake_port" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
port=$(port_of "$work/proxy.log")
echo "== iamport-proxy on 127.0.0.1:$port (holding the key and secret; the app sends no credentials)"
sleep 0.3

echo
echo "\$ curl -s http://127.0.0.1:$port/payments/imp_demo_1"
curl -s "http://127.0.0.1:$port/payments/imp_demo_1" | head -c 240; echo " ..."
echo
echo "\$ curl -s http://127.0.0.1:$port/_proxy/readyz"
curl -s "http://127.0.0.1:$port/_proxy/readyz"; echo
echo
echo "== the token is revoked upstream; the next call is renewed and replayed once, invisibly:"
curl -s -X POST "http://127.0.0.1:$fake_port/_fake/revoke" >/dev/null
echo "\$ curl -si -X POST -H 'Content-Type: application/json' -d '{\"imp_uid\":\"imp_demo_1\"}' http://127.0.0.1:$port/payments/cancel"
curl -si -X POST -H 'Content-Type: application/json' -d '{"imp_uid":"imp_demo_1"}' "http://127.0.0.1:$port/payments/cancel" | tr -d '\r' | sed -n '1,6p'
echo
echo "== what the proxy logged (no token, no secret):"
sleep 0.6  # access lines are written in batches, at most 500 ms after their request
sed 's/^/   /' "$work/proxy.log"
echo
echo "== fake API counters: $(curl -s "http://127.0.0.1:$fake_port/_fake/stats")"
