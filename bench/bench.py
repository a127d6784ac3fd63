#!/usr/bin/env python3
"""make bench: iamport-proxy beside nginx and HAProxy doing the same forwarding
(a static Authorization header, keep-alive to the upstream) against the same
fast local upstream, driven by wrk. Everything listens on 127.0.0.1; every run
is bounded in time; every process started here is stopped at the end.

Upstreams: nginx serving an iamport-sized payment answer and /users/getToken,
plain and TLS (a CA made on the spot), and a HAProxy Lua service that answers
after 20 ms. Rows are interleaved and repeated (--rounds) so that a noisy
machine shows as spread rather than as a false result.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = os.path.join(ROOT, ".build", "release", "iamport-proxy")
HAPROXY_DEFAULTS = """defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
    timeout http-keep-alive 120s
"""
TOKEN_BODY = '{"code":0,"message":null,"response":{"access_token":"bench-token","now":1700000000,"expired_at":1700001800}}'


def payment_json():
    payment = {
        "amount": 1004, "apply_num": "30016493", "bank_code": None, "bank_name": None,
        "buyer_addr": "서울특별시 강남구 삼성동", "buyer_email": "buyer@example.com", "buyer_name": "홍길동",
        "buyer_postcode": "123-456", "buyer_tel": "010-1234-5678", "cancel_amount": 0, "cancel_history": [],
        "cancel_reason": None, "cancel_receipt_urls": [], "cancelled_at": 0, "card_code": "361",
        "card_name": "BC카드", "card_number": "910020*********5", "card_quota": 0, "card_type": 0,
        "cash_receipt_issued": False, "channel": "pc", "currency": "KRW", "custom_data": None,
        "customer_uid": None, "customer_uid_usage": None, "emb_pg_provider": None, "escrow": False,
        "fail_reason": None, "failed_at": 0, "imp_uid": "imp_bench", "merchant_uid": "order_bench",
        "name": "노르웨이 회전 의자", "paid_at": 1700000000, "pay_method": "card", "pg_id": "INIpayTest",
        "pg_provider": "html5_inicis", "pg_tid": "StdpayCARDINIpayTest20231115000000123456",
        "receipt_url": "https://iniweb.inicis.com/DefaultWebApp/mall/cr/cm/mCmReceipt_head.jsp?noTid=StdpayCARDINIpayTest20231115000000123456&noMethod=1",
        "started_at": 1699999990, "status": "paid",
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
        "vbank_code": None, "vbank_date": 0, "vbank_holder": None, "vbank_issued_at": 0, "vbank_name": None,
        "vbank_num": None,
    }
    return json.dumps({"code": 0, "message": None, "response": payment}, ensure_ascii=False, separators=(",", ":"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Processes:
    def __init__(self):
        self.running = []

    def start(self, name, args, env=None, log=None):
        out = open(log, "w") if log else subprocess.DEVNULL
        p = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.running.append((name, p))
        return p

    def stop_all(self):
        for _, p in reversed(self.running):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for _, p in self.running:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def process_tree(pid):
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    return pids


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)$", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url, connections, seconds, sample=None):
    threads = 1 if connections == 1 else 2
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s", url]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampled = None
    if sample:
        time.sleep(seconds / 2)
        sampled = sample()
    out, _ = p.communicate(timeout=seconds + 30)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    # The latency-distribution lines only: "+/- Stdev" columns also end in "99%".
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors, "requests": total, "sampled": sampled}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of every row, interleaved")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.md"))
    args = parser.parse_args()
    for tool in ["nginx", "haproxy", "wrk", "openssl"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (make bench installs it)")
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"{BINARY} is missing: build it with `make release`")

    work = tempfile.mkdtemp(prefix="iamport-proxy-bench-")
    procs = Processes()
    try:
        results, facts = run(work, procs, args)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    report(results, facts, args)


def run(work, procs, args):
    payment = payment_json()
    with open(os.path.join(work, "payment.json"), "w") as f:
        f.write(payment)
    # A CA and a certificate for 127.0.0.1, made on the spot.
    ssl = lambda *a: subprocess.run(["openssl", *a], cwd=work, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=bench CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(work, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "san.ext", "-out", "server.pem")

    p = {name: free_port() for name in ["up", "up_tls", "up_slow", "ngx", "ngx_tls", "ngx_slow",
                                        "hap", "hap_tls", "hap_slow", "ip", "ip_tls", "ip_slow"]}
    # nginx writes nothing here, but wants writable temporary directories.
    temp_paths = " ".join(f"{kind}_temp_path {work}/tmp;" for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
    escaped = payment.replace("\\", "\\\\").replace("'", "\\'")
    # The upstream: nginx, one worker, answers from memory. getToken calls are logged to count them.
    with open(os.path.join(work, "upstream.conf"), "w") as f:
        f.write(f"""
worker_processes 1;
pid {work}/upstream.pid;
error_log {work}/upstream-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type application/json;
    {temp_paths}
    server {{
        listen 127.0.0.1:{p['up']} backlog=4096;
        listen 127.0.0.1:{p['up_tls']} ssl backlog=4096;
        ssl_certificate {work}/server.pem;
        ssl_certificate_key {work}/server.key;
        location = /users/getToken {{ access_log {work}/gettoken.log; return 200 '{TOKEN_BODY}'; }}
        location / {{ return 200 '{escaped}'; }}
    }}
}}
""")
    os.makedirs(os.path.join(work, "tmp"), exist_ok=True)
    procs.start("upstream", ["nginx", "-c", f"{work}/upstream.conf", "-g", "daemon off;"], log=f"{work}/upstream.out")
    # The 20 ms upstream: a HAProxy Lua service, one thread.
    with open(os.path.join(work, "slow.cfg"), "w") as f:
        f.write(f"""
global
    nbthread 1
    maxconn 8000
    lua-load {ROOT}/bench/delay.lua
{HAPROXY_DEFAULTS}frontend slow
    bind 127.0.0.1:{p['up_slow']}
    http-request use-service lua.slow
""")
    env = dict(os.environ, BENCH_PAYMENT_FILE=os.path.join(work, "payment.json"))
    procs.start("slow-upstream", ["haproxy", "-f", f"{work}/slow.cfg"], env=env, log=f"{work}/slow.out")

    # nginx as a static-header reverse proxy, keep-alive to the upstream.
    def ngx_server(port, upstream):
        return f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer bench-token";
            proxy_set_header Host 127.0.0.1;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_ssl_trusted_certificate {work}/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;  # nginx checks DNS names, not IP addresses
            proxy_ssl_session_reuse on;
        }}
    }}"""
    with open(os.path.join(work, "nginx-proxy.conf"), "w") as f:
        f.write(f"""
worker_processes 2;
pid {work}/nginx-proxy.pid;
error_log {work}/nginx-proxy-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    {temp_paths}
    upstream plain {{ server 127.0.0.1:{p['up']}; keepalive 1024; }}
    upstream tls {{ server 127.0.0.1:{p['up_tls']}; keepalive 1024; }}
    upstream slow {{ server 127.0.0.1:{p['up_slow']}; keepalive 1024; }}
{ngx_server(p['ngx'], 'http://plain')}
{ngx_server(p['ngx_tls'], 'https://tls')}
{ngx_server(p['ngx_slow'], 'http://slow')}
}}
""")
    ngx = procs.start("nginx", ["nginx", "-c", f"{work}/nginx-proxy.conf", "-g", "daemon off;"], log=f"{work}/nginx.out")
    with open(os.path.join(work, "haproxy.cfg"), "w") as f:
        f.write(f"""
global
    nbthread 2
    maxconn 8000
    ssl-server-verify required
{HAPROXY_DEFAULTS}    http-reuse always
frontend plain
    bind 127.0.0.1:{p['hap']}
    http-request set-header Authorization "Bearer bench-token"
    default_backend plain
frontend tls
    bind 127.0.0.1:{p['hap_tls']}
    http-request set-header Authorization "Bearer bench-token"
    default_backend tls
frontend slow
    bind 127.0.0.1:{p['hap_slow']}
    http-request set-header Authorization "Bearer bench-token"
    default_backend slow
backend plain
    server up 127.0.0.1:{p['up']}
backend tls
    server up 127.0.0.1:{p['up_tls']} ssl ca-file {work}/ca.pem verify required
backend slow
    server up 127.0.0.1:{p['up_slow']}
""")
    hap = procs.start("haproxy", ["haproxy", "-f", f"{work}/haproxy.cfg"], log=f"{work}/haproxy.out")

    for name in ["up", "up_tls", "up_slow"]:
        wait_port(p[name])

    def start_proxy(name, listen_port, upstream, extra=()):
        env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "bench-key", "IAMPORT_API_SECRET": "bench-secret",
               "IAMPORT_PROXY_LOG_LEVEL": "warning"}
        return procs.start(name, [BINARY, "--listen", f"127.0.0.1:{listen_port}", "--upstream", upstream,
                                  "--max-connections", "20000", *extra], env=env, log=f"{work}/{name}.log")
    ip = start_proxy("iamport-proxy", p["ip"], f"http://127.0.0.1:{p['up']}")
    ip_tls = start_proxy("iamport-proxy-tls", p["ip_tls"], f"https://127.0.0.1:{p['up_tls']}",
                         ["--upstream-ca-file", f"{work}/ca.pem"])
    ip_slow = start_proxy("iamport-proxy-slow", p["ip_slow"], f"http://127.0.0.1:{p['up_slow']}")
    for name, port in p.items():
        try:
            wait_port(port)
        except RuntimeError:
            for log in sorted(os.listdir(work)):
                if log.endswith((".out", ".log")):
                    print(f"--- {log}:", open(os.path.join(work, log)).read()[-2000:], file=sys.stderr)
            raise RuntimeError(f"{name} is not listening on {port}")
    time.sleep(1)
    for port in [p["ip"], p["ip_tls"], p["ip_slow"]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_proxy/readyz", timeout=5) as r:
            assert r.status == 200
    facts = {"rss_idle_kib": rss_kib(ip.pid), "cpu": {}, "rss_1000_kib": None}

    path = "/payments/imp_bench"
    rows = []
    for connections in [1, 64, 1000]:
        rows.append(("plain", connections, {
            "direct": f"http://127.0.0.1:{p['up']}{path}", "nginx": f"http://127.0.0.1:{p['ngx']}{path}",
            "haproxy": f"http://127.0.0.1:{p['hap']}{path}", "iamport-proxy": f"http://127.0.0.1:{p['ip']}{path}"}))
    rows.append(("TLS", 64, {
        "direct": f"https://127.0.0.1:{p['up_tls']}{path}", "nginx": f"http://127.0.0.1:{p['ngx_tls']}{path}",
        "haproxy": f"http://127.0.0.1:{p['hap_tls']}{path}", "iamport-proxy": f"http://127.0.0.1:{p['ip_tls']}{path}"}))
    rows.append(("20 ms", 1000, {
        "direct": f"http://127.0.0.1:{p['up_slow']}{path}", "nginx": f"http://127.0.0.1:{p['ngx_slow']}{path}",
        "haproxy": f"http://127.0.0.1:{p['hap_slow']}{path}", "iamport-proxy": f"http://127.0.0.1:{p['ip_slow']}{path}"}))
    pids = {"nginx": process_tree(ngx.pid), "haproxy": [hap.pid], "iamport-proxy": [ip.pid]}

    results = {}
    for round_number in range(args.rounds):
        for upstream, connections, targets in rows:
            names = list(targets)
            random.shuffle(names)
            for name in names:
                key = (upstream, connections, name)
                measure_cpu = upstream == "plain" and connections == 64 and name in pids
                sample = None
                if name == "iamport-proxy" and connections == 1000:
                    proxy_pid = ip_slow.pid if upstream == "20 ms" else ip.pid
                    sample = lambda pid=proxy_pid: rss_kib(pid)
                before = cpu_ticks(pids[name]) if measure_cpu else 0
                result = run_wrk(targets[name], connections, args.seconds, sample)
                if measure_cpu:
                    ticks = cpu_ticks(pids[name]) - before
                    hz = os.sysconf("SC_CLK_TCK")
                    facts["cpu"].setdefault(name, []).append(ticks / hz / result["requests"] * 10000)
                if result["sampled"] is not None:
                    facts["rss_1000_kib"] = max(facts["rss_1000_kib"] or 0, result["sampled"])
                results.setdefault(key, []).append(result)
                print(f"round {round_number + 1} {upstream:>5} c={connections:<4} {name:<13} "
                      f"{result['rps']:>9.0f} req/s  p50 {result['p50']:.2f} ms  p99 {result['p99']:.2f} ms  errors {result['errors']}",
                      flush=True)
    for port in [p["ip"], p["ip_tls"], p["ip_slow"]]:
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/_proxy/metrics", timeout=5).read().decode()
        facts.setdefault("fetches", []).append({
            line.split("{")[1].split("}")[0]: int(float(line.split()[-1])) for line in metrics.splitlines()
            if line.startswith("iamport_proxy_token_fetches_total")})
    with open(os.path.join(work, "gettoken.log")) as f:
        facts["upstream_gettoken_calls"] = len(f.readlines())
    facts["slow_gettoken_calls"] = int(urllib.request.urlopen(f"http://127.0.0.1:{p['up_slow']}/_count", timeout=5).read())
    facts["rss_peak_kib"] = rss_kib(ip_slow.pid, "VmHWM")
    return results, facts


def report(results, facts, args):
    def med(values):
        return statistics.median(values)

    lines = []
    lines.append(f"wrk, {args.seconds} s per run, {args.rounds} interleaved rounds; median (min–max) requests/s; "
                 "latency medians of the rounds' p50 and p99 in ms.\n")
    lines.append("| upstream | conns | target | req/s | p50 ms | p99 ms | errors | req/s vs nginx | p99 vs nginx |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(u, c) for (u, c, _) in results}, key=lambda k: (["plain", "TLS", "20 ms"].index(k[0]), k[1]))
    for upstream, connections in keys:
        nginx = results.get((upstream, connections, "nginx"))
        for name in ["direct", "nginx", "haproxy", "iamport-proxy"]:
            runs = results.get((upstream, connections, name))
            if not runs:
                continue
            rps = [r["rps"] for r in runs]
            p50 = med([r["p50"] for r in runs])
            p99 = med([r["p99"] for r in runs])
            errors = sum(r["errors"] for r in runs)
            ratio = p99ratio = ""
            if nginx and name != "nginx":
                ratio = f"{med(rps) / med([r['rps'] for r in nginx]):.2f}"
                p99ratio = f"{p99 / med([r['p99'] for r in nginx]):.2f}"
            lines.append(f"| {upstream} | {connections} | {name} | {med(rps):.0f} ({min(rps):.0f}–{max(rps):.0f}) | "
                         f"{p50:.2f} | {p99:.2f} | {errors} | {ratio} | {p99ratio} |")
    lines.append("")
    if ("plain", 1, "direct") in results:
        direct = med([r["p50"] for r in results[("plain", 1, "direct")]])
        for name in ["nginx", "haproxy", "iamport-proxy"]:
            added = med([r["p50"] for r in results[("plain", 1, name)]]) - direct
            lines.append(f"- added p50 latency at 1 connection over direct, {name}: {added * 1000:.0f} µs")
    slow = results.get(("20 ms", 1000, "iamport-proxy"))
    if slow:
        limit = 1000 / 0.020
        lines.append(f"- 20 ms upstream, 1000 connections: iamport-proxy {med([r['rps'] for r in slow]):.0f} req/s = "
                     f"{med([r['rps'] for r in slow]) / limit * 100:.0f}% of the concurrency limit ({limit:.0f} req/s)")
    for name, values in facts["cpu"].items():
        lines.append(f"- CPU seconds per 10,000 requests (plain, 64 connections), {name}: {med(values):.3f}")
    lines.append(f"- iamport-proxy RSS: idle {facts['rss_idle_kib'] / 1024:.1f} MiB; with 1000 connections "
                 f"{(facts['rss_1000_kib'] or 0) / 1024:.1f} MiB; peak of the 20 ms instance {facts['rss_peak_kib'] / 1024:.1f} MiB")
    lines.append(f"- getToken calls: {facts['upstream_gettoken_calls']} at the fast upstream (2 proxies), "
                 f"{facts['slow_gettoken_calls']} at the slow one (1 proxy); token fetches counted by the proxies: {facts['fetches']}")
    text = "\n".join(lines)
    print()
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
