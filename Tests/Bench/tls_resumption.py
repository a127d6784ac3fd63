#!/usr/bin/env python3
"""TLS session resumption for new upstream connections: what a new TLS
connection to the upstream costs through iamport-proxy, and how many resume.

An nginx TLS upstream (a CA made on the spot) logs `$ssl_session_reused`
for each connection's first request. The proxy runs with one event loop (one
upstream client). With the upstream answering `Connection: close`, each
request through the proxy opens a new upstream connection: sequential (one
request after another) and bursts (--burst requests at once, --rounds
times), with the upstream allowing resumption and refusing it (no tickets,
no session cache: the cost of a full handshake). Growth: a kept-alive
upstream and wrk at more and more client connections, so that the pool
opens connections only as concurrency passes its last peak.

    python3 Tests/Bench/tls_resumption.py --binary before=/path/a --binary after=/path/b

Everything listens on 127.0.0.1; every process started here is stopped.
"""
import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import TOKEN_BODY, free_port, make_certificates, wait_port  # noqa: E402


def start_upstream(work, port, resumption, protocols, keepalive=False):
    conf = os.path.join(work, f"upstream-{port}.conf")
    log = os.path.join(work, f"access-{port}.log")
    session = "ssl_session_tickets on; ssl_session_cache shared:TLS:1m;" if resumption else \
        "ssl_session_tickets off; ssl_session_cache off;"
    temp_paths = " ".join(f"{k}_temp_path {work}/tmp;" for k in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
pid {work}/upstream-{port}.pid;
error_log {work}/upstream-{port}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    log_format reuse '$ssl_session_reused $ssl_protocol $connection_requests';
    keepalive_timeout {"120s" if keepalive else "0"};
    keepalive_requests 1000000;
    default_type application/json;
    {temp_paths}
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {work}/server.pem;
        ssl_certificate_key {work}/server.key;
        ssl_protocols {protocols};
        {session}
        location = /users/getToken {{ return 200 '{TOKEN_BODY}'; }}
        location / {{ access_log {log} reuse; return 200 '{{"code":0,"message":null,"response":{{}}}}'; }}
    }}
}}
""")
    os.makedirs(os.path.join(work, "tmp"), exist_ok=True)
    proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_port(port)
    return proc, log


def start_proxy(binary, work, port, upstream_port):
    env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "bench-key", "IAMPORT_API_SECRET": "bench-secret",
           "IAMPORT_PROXY_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--upstream", f"https://localhost:{upstream_port}",
                             "--upstream-ca-file", f"{work}/ca.pem", "--event-loops", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_port(port)
    return proc


def request(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/payments/imp_bench")
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}")


def sequential(port, count):
    start = time.monotonic()
    for _ in range(count):
        request(port)
    return time.monotonic() - start


def bursts(port, size, rounds):
    start = time.monotonic()
    for _ in range(rounds):
        errors = []

        def one():
            try:
                request(port)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=one) for _ in range(size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if errors:
            raise RuntimeError(f"burst failed: {errors[0]}")
    return time.monotonic() - start


def growth(port, sizes):
    """Concurrency that grows: wrk at each number of client connections in
    turn, so the pool (GETs keep their upstream connections) opens new
    upstream connections only as the concurrency passes its last peak."""
    for size in sizes:
        subprocess.run(["wrk", "-t", "1", "-c", str(size), "-d", "1s", f"http://127.0.0.1:{port}/payments/imp_bench"],
                       check=True, capture_output=True, timeout=30)


def cpu_seconds(pid):
    """User and system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resumed(log, skip):
    """(resumed, new connections, lines read) from line `skip` on: a
    connection's first request tells whether its handshake resumed."""
    with open(log) as f:
        lines = [line for line in f.read().split("\n") if line][skip:]
    first = [line for line in lines if line.endswith(" 1")]
    return sum(1 for line in first if line.startswith("r ")), len(first), len(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", action="append", required=True, help="label=path of an iamport-proxy binary")
    parser.add_argument("--count", type=int, default=500, help="sequential requests")
    parser.add_argument("--burst", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--protocols", action="append", default=None, help="nginx ssl_protocols (repeatable)")
    args = parser.parse_args()
    for tool in ["nginx", "openssl", "wrk"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (WITH_BENCH=1 .ci/install-deps.sh)")
    work = tempfile.mkdtemp(prefix="tls-resumption-")
    procs = []
    try:
        make_certificates(work, common_name="localhost")
        print(f"{args.count} sequential requests, then {args.rounds} bursts of {args.burst}; each request on a new upstream connection")
        print("| TLS | upstream resumption | binary | pattern | resumed | wall ms per request | proxy CPU ms per request |")
        print("|---|---|---|---|---|---|---|")
        for protocols in args.protocols or ["TLSv1.3", "TLSv1.2"]:
            for allow in [True, False]:
                for spec in args.binary:
                    label, binary = spec.split("=", 1)
                    up_port, proxy_port = free_port(), free_port()
                    up, log = start_upstream(work, up_port, allow, protocols)
                    procs.append(up)
                    proxy = start_proxy(binary, work, proxy_port, up_port)
                    procs.append(proxy)
                    request(proxy_port)  # the token, and a first session
                    skip = resumed(log, 0)[2]
                    cpu = cpu_seconds(proxy.pid)
                    seconds = sequential(proxy_port, args.count)
                    cpu = cpu_seconds(proxy.pid) - cpu
                    hits, total, lines = resumed(log, skip)
                    print(f"| {protocols} | {'allowed' if allow else 'refused'} | {label} | sequential | "
                          f"{hits}/{total} | {1000 * seconds / args.count:.2f} | {1000 * cpu / args.count:.2f} |", flush=True)
                    skip += lines
                    cpu = cpu_seconds(proxy.pid)
                    seconds = bursts(proxy_port, args.burst, args.rounds)
                    cpu = cpu_seconds(proxy.pid) - cpu
                    hits, total, _ = resumed(log, skip)
                    n = args.burst * args.rounds
                    print(f"| {protocols} | {'allowed' if allow else 'refused'} | {label} | bursts of {args.burst} | "
                          f"{hits}/{total} | {1000 * seconds / n:.2f} | {1000 * cpu / n:.2f} |", flush=True)
                    for p in (proxy, up):
                        p.terminate()
                        p.wait(10)
                    if not allow:
                        continue
                    # Growth: a kept-alive upstream; new connections only as concurrency grows.
                    up, log = start_upstream(work, up_port, allow, protocols, keepalive=True)
                    procs.append(up)
                    proxy = start_proxy(binary, work, proxy_port, up_port)
                    procs.append(proxy)
                    request(proxy_port)
                    skip = resumed(log, 0)[2]
                    sizes = [2, 4, 8, 16, 32, 64, 128]
                    growth(proxy_port, sizes)
                    hits, total, _ = resumed(log, skip)
                    print(f"| {protocols} | allowed, keep-alive | {label} | growth {'/'.join(map(str, sizes))} | "
                          f"{hits}/{total} | | |", flush=True)
                    for p in (proxy, up):
                        p.terminate()
                        p.wait(10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
