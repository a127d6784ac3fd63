#!/usr/bin/env python3
"""make bench: iamport-proxy as users run it (default settings, access log on)
beside nginx and HAProxy doing the same forwarding (a static Authorization
header, keep-alive to the upstream, an access log each) against the same
local upstream, driven by wrk. Optionally a second proxy binary (--baseline,
BENCH_BASELINE) in the same run, so a change has its before and after
measured side by side. Everything listens on 127.0.0.1; every run is bounded
in time; every process started here is stopped at the end.

Upstreams: nginx serving an iamport-sized payment answer to GET and POST
alike, and /users/getToken, plain and TLS (a CA made on the spot), and a
HAProxy Lua service that answers after 20 ms. Requests: GET /payments/imp_bench
and POST /payments/cancel with a small JSON body (Tests/Bench/post.lua). Each cell
(request, upstream, connections) runs every contender back to back in a
shuffled order, and rounds repeat the cells: a contender is compared with
nginx in the same round, so a noisy machine shows as spread in the ratios
rather than as a false result.
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

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.join(ROOT, ".build", "release", "iamport-proxy")
POST_SCRIPT = os.path.join(ROOT, "Tests", "Bench", "post.lua")
HAPROXY_DEFAULTS = """defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
    timeout http-keep-alive 120s
"""
TOKEN_BODY = '{"code":0,"message":null,"response":{"access_token":"bench-token","now":1700000000,"expired_at":1700001800}}'
PROXY = "iamport-proxy"
BASELINE = "baseline"
CONTENDERS = ["direct", "nginx", "haproxy", PROXY, BASELINE]


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
        # Append mode, so that truncating a log between runs leaves no hole.
        out = open(log, "a") if log else subprocess.DEVNULL
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
                p.wait(timeout=5)


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


def run_wrk(url, method, connections, seconds, sample=None):
    threads = 1 if connections == 1 else 2
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if method == "POST":
        args += ["-s", POST_SCRIPT]
    p = subprocess.Popen(args + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampled = None
    if sample:
        time.sleep(seconds / 2)
        sampled = sample()
    out, _ = p.communicate(timeout=seconds + 30)
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        # The latency-distribution lines only: "+/- Stdev" columns also end in "99%".
        p50 = to_ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))
        p99 = to_ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))
    except AttributeError:
        raise RuntimeError(f"wrk {url} gave no result:\n{out}")
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors, "requests": total, "sampled": sampled}


def env_int(name, default):
    text = os.environ.get(name, "")
    return int(text) if text else default


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=env_int("BENCH_SECONDS", 4),
                        help="length of each wrk run (BENCH_SECONDS)")
    parser.add_argument("--rounds", type=int, default=env_int("BENCH_ROUNDS", 4),
                        help="repetitions of every cell, interleaved (BENCH_ROUNDS)")
    parser.add_argument("--binary", default=os.environ.get("BENCH_BINARY") or BINARY,
                        help="the iamport-proxy binary under test (BENCH_BINARY; default: this tree's release build)")
    parser.add_argument("--baseline", default=os.environ.get("BENCH_BASELINE") or None,
                        help="a second iamport-proxy binary measured in the same run (BENCH_BASELINE)")
    parser.add_argument("--proxy-env", default=os.environ.get("BENCH_PROXY_ENV", ""),
                        help="NAME=VALUE pairs, space-separated, added to the binary's environment (BENCH_PROXY_ENV)")
    parser.add_argument("--baseline-env", default=os.environ.get("BENCH_BASELINE_ENV", ""),
                        help="the same for the baseline (BENCH_BASELINE_ENV): one binary can be both, differently set")
    parser.add_argument("--cells", default=os.environ.get("BENCH_CELLS", ""),
                        help="only these cells, comma-separated, e.g. GET-20ms-1000,POST-TLS-64 (BENCH_CELLS)")
    parser.add_argument("--out", default=os.path.join(ROOT, "Tests", "Bench", "results", "latest.md"))
    args = parser.parse_args()
    if args.seconds < 1 or args.rounds < 1:
        sys.exit("--seconds and --rounds must be at least 1")
    for tool in ["nginx", "haproxy", "wrk", "openssl"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (make bench installs it)")
    selected_cells(args.cells)  # an unknown name stops here, before anything starts
    for binary in [args.binary, args.baseline]:
        if binary and not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing or not executable: build it with `make release`")

    # SIGTERM (and SIGINT, where not ignored) unwinds through the cleanup
    # below instead of leaving the servers running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="iamport-proxy-bench-")
    procs = Processes()
    try:
        results, facts = run(work, procs, args)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    report(results, facts, args)


def make_certificates(work, common_name="127.0.0.1"):
    """A CA (ca.pem) and a server certificate for 127.0.0.1 and localhost
    signed by it (server.pem, server.key) in `work`, made on the spot."""
    ssl = lambda *a: subprocess.run(["openssl", *a], cwd=work, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=bench CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={common_name}")
    with open(os.path.join(work, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "san.ext", "-out", "server.pem")


def nginx_temp_paths(work):
    """nginx wants writable temporary directories."""
    os.makedirs(os.path.join(work, "tmp"), exist_ok=True)
    return " ".join(f"{kind}_temp_path {work}/tmp;" for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])


def write_upstream_conf(work, payment, listens, keepalive_requests=1000000, keepalive_timeout=120, token_log=None):
    """The fast upstream of every bench script: nginx, one worker, answering
    GET and POST alike from memory (`return` reads and discards a request
    body) with `payment`, and /users/getToken with TOKEN_BODY. Not a
    contender: no access log, except getToken calls when `token_log` names a
    file. `listens`: the `listen` (and `ssl_*`) lines of its server."""
    escaped = payment.replace("\\", "\\\\").replace("'", "\\'")
    token_access = f"access_log {token_log}; " if token_log else ""
    with open(os.path.join(work, "upstream.conf"), "w") as f:
        f.write(f"""
worker_processes 1;
pid {work}/upstream.pid;
error_log {work}/upstream-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests {keepalive_requests};
    keepalive_timeout {keepalive_timeout}s;
    default_type application/json;
    {nginx_temp_paths(work)}
    server {{
        {listens}
        location = /users/getToken {{ {token_access}return 200 '{TOKEN_BODY}'; }}
        location / {{ return 200 '{escaped}'; }}
    }}
}}
""")


def start_fast_upstream(work, procs, tls):
    """The bench's fast upstream and its configuration files (the reference
    proxies' too, not started), for the per-request scripts: certificates,
    ports, configs, the upstream nginx running. Returns the ports, the
    upstream's URL and the proxy's extra arguments (the CA file for TLS)."""
    make_certificates(work)
    names = ["up", "up_tls", "up_slow", "ngx", "ngx_tls", "ngx_slow", "hap", "hap_tls", "hap_slow"]
    p = {n: free_port() for n in names}
    write_configs(work, p, payment_json())
    procs.start("upstream", ["nginx", "-c", f"{work}/upstream.conf", "-g", "daemon off;"], log=f"{work}/upstream.out")
    wait_port(p["up"])
    url = f"https://127.0.0.1:{p['up_tls']}" if tls else f"http://127.0.0.1:{p['up']}"
    extra = ["--upstream-ca-file", f"{work}/ca.pem"] if tls else []
    return p, url, extra


def write_configs(work, p, payment):
    """The upstreams and the two reference proxies (nginx, HAProxy)."""
    temp_paths = nginx_temp_paths(work)
    write_upstream_conf(work, payment, f"""listen 127.0.0.1:{p['up']} backlog=4096;
        listen 127.0.0.1:{p['up_tls']} ssl backlog=4096;
        ssl_certificate {work}/server.pem;
        ssl_certificate_key {work}/server.key;""", token_log=f"{work}/gettoken.log")
    # The 20 ms upstream: a HAProxy Lua service, one thread.
    with open(os.path.join(work, "slow.cfg"), "w") as f:
        f.write(f"""
global
    nbthread 1
    maxconn 8000
    lua-load {ROOT}/Tests/Bench/delay.lua
{HAPROXY_DEFAULTS}frontend slow
    bind 127.0.0.1:{p['up_slow']}
    http-request use-service lua.slow
""")

    # nginx as a static-header reverse proxy, keep-alive to the upstream,
    # its access log on and buffered, as it is usually run.
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
    access_log {work}/nginx-access.log combined buffer=64k flush=1s;
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
    # HAProxy with its usual HTTP log (`option httplog`) into a ring buffer in
    # memory: every line is formatted, none costs a syscall. (Its usual sink,
    # syslog over UDP, would cost a sendto per request; nginx's buffered file
    # log costs one write per 64 KiB.)
    with open(os.path.join(work, "haproxy.cfg"), "w") as f:
        f.write(f"""
ring accesslog
    format rfc3164
    maxlen 1024
    size 1048576
global
    nbthread 2
    maxconn 8000
    ssl-server-verify required
    log ring@accesslog local0
{HAPROXY_DEFAULTS}    log global
    option httplog
    http-reuse always
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


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_proxy/metrics", timeout=5) as r:
        return r.read().decode()


def metric_sum(text, name):
    return sum(int(float(line.split()[-1])) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "))


def run(work, procs, args):
    payment = payment_json()
    with open(os.path.join(work, "payment.json"), "w") as f:
        f.write(payment)
    make_certificates(work)

    binaries = {PROXY: args.binary}
    if args.baseline:
        binaries[BASELINE] = args.baseline
    ports = ["up", "up_tls", "up_slow", "ngx", "ngx_tls", "ngx_slow", "hap", "hap_tls", "hap_slow"]
    ports += [f"{name}/{upstream}" for name in binaries for upstream in ["plain", "TLS", "20 ms"]]
    p = {name: free_port() for name in ports}
    write_configs(work, p, payment)

    procs.start("upstream", ["nginx", "-c", f"{work}/upstream.conf", "-g", "daemon off;"], log=f"{work}/upstream.out")
    env = dict(os.environ, BENCH_PAYMENT_FILE=os.path.join(work, "payment.json"))
    procs.start("slow-upstream", ["haproxy", "-f", f"{work}/slow.cfg"], env=env, log=f"{work}/slow.out")
    ngx = procs.start("nginx", ["nginx", "-c", f"{work}/nginx-proxy.conf", "-g", "daemon off;"], log=f"{work}/nginx.out")
    hap = procs.start("haproxy", ["haproxy", "-f", f"{work}/haproxy.cfg"], log=f"{work}/haproxy.out")
    for name in ["up", "up_tls", "up_slow"]:
        wait_port(p[name])

    # The proxy at its default settings (log level info: the access log on,
    # one line per request to stderr, here a file); only what it must be told.
    upstream_urls = {"plain": f"http://127.0.0.1:{p['up']}", "TLS": f"https://127.0.0.1:{p['up_tls']}",
                     "20 ms": f"http://127.0.0.1:{p['up_slow']}"}
    proxies = {}  # (name, upstream) -> (process, port, log)
    for name, binary in binaries.items():
        for upstream, url in upstream_urls.items():
            port = p[f"{name}/{upstream}"]
            log = f"{work}/{name}-{upstream.replace(' ', '')}.log"
            extra = ["--upstream-ca-file", f"{work}/ca.pem"] if upstream == "TLS" else []
            env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "bench-key", "IAMPORT_API_SECRET": "bench-secret"}
            env.update(pair.split("=", 1) for pair in (args.baseline_env if name == BASELINE else args.proxy_env).split())
            proc = procs.start(f"{name}-{upstream}", [binary, "--listen", f"127.0.0.1:{port}", "--upstream", url, *extra],
                               env=env, log=log)
            proxies[(name, upstream)] = (proc, port, log)
    for name, port in p.items():
        try:
            wait_port(port)
        except RuntimeError:
            for log in sorted(os.listdir(work)):
                if log.endswith((".out", ".log")):
                    print(f"--- {log}:", open(os.path.join(work, log)).read()[-2000:], file=sys.stderr)
            raise RuntimeError(f"{name} is not listening on {port}")
    time.sleep(1)
    for _, port, _ in proxies.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_proxy/readyz", timeout=5) as r:
            assert r.status == 200
    facts = {"rss_idle_kib": {name: rss_kib(proxies[(name, "plain")][0].pid) for name in binaries},
             "rss_1000_kib": {}, "binaries": {
                 name: binary + (f" ({extra})" if extra else "")
                 for name, binary, extra in [(PROXY, args.binary, args.proxy_env), (BASELINE, args.baseline, args.baseline_env)]
                 if name in binaries}}

    paths = {"GET": "/payments/imp_bench", "POST": "/payments/cancel"}
    fronts = {"plain": ("ngx", "hap", f"http://127.0.0.1:{p['up']}"),
              "TLS": ("ngx_tls", "hap_tls", f"https://127.0.0.1:{p['up_tls']}"),
              "20 ms": ("ngx_slow", "hap_slow", f"http://127.0.0.1:{p['up_slow']}")}

    def targets(method, upstream, connections):
        ngx_port, hap_port, direct = fronts[upstream]
        path = paths[method]
        t = {}
        # Direct only where it is the reference for added latency.
        if connections == 1:
            t["direct"] = direct + path
        t["nginx"] = f"http://127.0.0.1:{p[ngx_port]}{path}"
        t["haproxy"] = f"http://127.0.0.1:{p[hap_port]}{path}"
        for name in binaries:
            t[name] = f"http://127.0.0.1:{proxies[(name, upstream)][1]}{path}"
        return t

    cells = selected_cells(args.cells)
    logs = {"nginx": f"{work}/nginx-access.log"}
    pids = {"nginx": process_tree(ngx.pid), "haproxy": [hap.pid]}

    # Warm-up, not recorded: connections to every upstream, TLS sessions, code paths.
    for method, upstream, connections in cells:
        if connections == 64:
            for url in targets(method, upstream, connections).values():
                run_wrk(url, method, 16, 1)
    for name in binaries:
        for upstream in upstream_urls:
            open(proxies[(name, upstream)][2], "w").close()

    results = {}
    for round_number in range(args.rounds):
        for cell in cells:
            method, upstream, connections = cell
            t = targets(*cell)
            names = list(t)
            random.shuffle(names)
            for name in names:
                proxy = proxies.get((name, upstream))
                cpu_pids = [proxy[0].pid] if proxy else pids.get(name)
                sample = None
                if proxy and connections == 1000:
                    sample = lambda pid=proxy[0].pid: rss_kib(pid)
                opened_before = metric_sum(scrape(proxy[1]), "iamport_proxy_upstream_connections_opened") if proxy else 0
                cpu_before = cpu_ticks(cpu_pids) if cpu_pids else 0
                result = run_wrk(t[name], method, connections, args.seconds, sample)
                if cpu_pids:
                    ticks = cpu_ticks(cpu_pids) - cpu_before
                    result["cpu"] = ticks / os.sysconf("SC_CLK_TCK") / max(result["requests"], 1) * 10000
                if proxy:
                    opened = metric_sum(scrape(proxy[1]), "iamport_proxy_upstream_connections_opened") - opened_before
                    result["opened_per_1k"] = opened / max(result["requests"], 1) * 1000
                if result["sampled"] is not None:
                    facts["rss_1000_kib"][name] = max(facts["rss_1000_kib"].get(name, 0), result["sampled"])
                # Bounded disk: the access logs are emptied after each run.
                log = proxy[2] if proxy else logs.get(name)
                if log:
                    open(log, "w").close()
                results.setdefault(cell, {}).setdefault(name, []).append(result)
                print(f"round {round_number + 1} {method:<4} {upstream:>5} c={connections:<4} {name:<13} "
                      f"{result['rps']:>9.0f} req/s  p50 {result['p50']:.3f} ms  p99 {result['p99']:.2f} ms  "
                      f"errors {result['errors']}", flush=True)

    facts["fetches"] = {}
    for (name, upstream), (proc, port, _) in proxies.items():
        metrics = scrape(port)
        facts["fetches"][f"{name} {upstream}"] = metric_sum(metrics, "iamport_proxy_token_fetches_total")
        if upstream == "20 ms":
            facts.setdefault("rss_peak_kib", {})[name] = rss_kib(proc.pid, "VmHWM")
    with open(os.path.join(work, "gettoken.log")) as f:
        facts["upstream_gettoken_calls"] = len(f.readlines())
    facts["slow_gettoken_calls"] = int(urllib.request.urlopen(f"http://127.0.0.1:{p['up_slow']}/_count", timeout=5).read())
    facts["load"] = os.getloadavg()
    return results, facts


def all_cells():
    cells = [(method, upstream, connections) for method in ["GET", "POST"] for upstream in ["plain", "TLS"]
             for connections in [1, 64]]
    return cells + [("GET", "20 ms", 1000)]


def selected_cells(names):
    """The cells `names` (BENCH_CELLS) lists, or all of them."""
    if not names:
        return all_cells()
    wanted = {name.strip() for name in names.split(",") if name.strip()}
    known = {cell_name(cell) for cell in all_cells()}
    if not wanted <= known:
        sys.exit(f"unknown cells {sorted(wanted - known)}; the cells are {sorted(known)}")
    return [cell for cell in all_cells() if cell_name(cell) in wanted]


def cell_name(cell):
    """`GET-20ms-1000`: a cell as BENCH_CELLS names it."""
    method, upstream, connections = cell
    return f"{method}-{upstream.replace(' ', '')}-{connections}"


def spread(values, fmt="{:.2f}"):
    """median (min–max)"""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def per_round(runs, reference, value):
    """value(run, reference run) for each round both have."""
    return [value(a, b) for a, b in zip(runs, reference)]


def report(results, facts, args):
    med = statistics.median
    lines = []
    names = [n for n in CONTENDERS if any(n in by_name for by_name in results.values())]
    lines.append(f"wrk, {args.seconds} s per run, {args.rounds} interleaved rounds, load average at the end "
                 f"{facts['load'][0]:.1f}/{facts['load'][1]:.1f}/{facts['load'][2]:.1f}. "
                 f"{PROXY}: {facts['binaries'][PROXY]}"
                 + (f"; {BASELINE}: {facts['binaries'][BASELINE]}" if BASELINE in facts["binaries"] else "") + ".")
    lines.append("Ratios to nginx are taken within each round, then shown as median (min–max) over the rounds; "
                 "p50 and p99 are medians over the rounds; errors are summed (non-2xx and socket errors); "
                 "CPU is the contender's CPU-seconds per 10,000 requests; conns/1k is upstream connections "
                 "the proxy opened per 1,000 requests.\n")
    lines.append("| request | upstream | conns | target | req/s | vs nginx | p50 ms | p99 ms | p99 vs nginx | errors | CPU s/10k | conns/1k |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cell, by_name in results.items():
        method, upstream, connections = cell
        nginx = by_name["nginx"]
        for name in names:
            runs = by_name.get(name)
            if not runs:
                continue
            ratio = p99ratio = ""
            if name != "nginx":
                ratio = spread(per_round(runs, nginx, lambda a, b: a["rps"] / b["rps"]))
                p99ratio = spread(per_round(runs, nginx, lambda a, b: a["p99"] / b["p99"]))
            cpu = f"{med([r['cpu'] for r in runs]):.3f}" if "cpu" in runs[0] else ""
            opened = f"{med([r['opened_per_1k'] for r in runs]):.1f}" if "opened_per_1k" in runs[0] else ""
            lines.append(f"| {method} | {upstream} | {connections} | {name} | {spread([r['rps'] for r in runs], '{:.0f}')} | "
                         f"{ratio} | {med([r['p50'] for r in runs]):.3f} | {med([r['p99'] for r in runs]):.2f} | "
                         f"{p99ratio} | {sum(r['errors'] for r in runs)} | {cpu} | {opened} |")
    lines.append("")

    contenders = [n for n in names if n != "direct"]
    added = {}
    if any(connections == 1 for _, _, connections in results):
        lines.append("Added p50 latency at 1 connection over direct, µs, median (min–max) over the rounds:\n")
        lines.append("| request | upstream | " + " | ".join(contenders) + " |")
        lines.append("|---|---|" + "---|" * len(contenders))
    for (method, upstream, connections), by_name in results.items():
        if connections != 1:
            continue
        row = []
        for name in contenders:
            values = per_round(by_name[name], by_name["direct"], lambda a, b: (a["p50"] - b["p50"]) * 1000)
            added[(method, upstream, name)] = values
            row.append(spread(values, "{:.0f}"))
        lines.append(f"| {method} | {upstream} | " + " | ".join(row) + " |")
    if added:
        lines.append("")

    lines.append("Targets (medians over the rounds):\n")
    lines.append("| target | " + " | ".join(n for n in [PROXY, BASELINE] if n in names) + " |")
    lines.append("|---|" + "---|" * len([n for n in [PROXY, BASELINE] if n in names]))

    def verdict(ok, text):
        return f"{'met' if ok else 'MISSED'}: {text}"

    checks = []
    for (method, upstream, connections), by_name in results.items():
        nginx = by_name["nginx"]
        if connections == 64:
            checks.append((f"{method} {upstream}, 64 connections: ≥ 1.0× nginx's req/s", lambda n, b=by_name, g=nginx: (
                lambda r: verdict(r >= 1.0, f"{r:.2f}×"))(med(per_round(b[n], g, lambda a, c: a["rps"] / c["rps"])))))
        if connections == 1:
            checks.append((f"{method} {upstream}, 1 connection: added p50 ≤ nginx's", lambda n, m=method, u=upstream: (
                lambda mine, ngx: verdict(mine <= ngx, f"+{mine:.0f} µs vs +{ngx:.0f} µs"))(
                med(added[(m, u, n)]), med(added[(m, u, "nginx")]))))
        if connections == 1000:
            checks.append((f"{method} {upstream}, 1000 connections: ≥ 1.0× nginx's req/s, no errors", lambda n, b=by_name, g=nginx: (
                lambda r, e: verdict(r >= 1.0 and e == 0, f"{r:.2f}×, {e} errors"))(
                med(per_round(b[n], g, lambda a, c: a["rps"] / c["rps"])), sum(r["errors"] for r in b[n]))))
        if connections >= 64:
            checks.append((f"{method} {upstream}, {connections} connections: p99 ≤ 1.5× nginx's", lambda n, b=by_name, g=nginx: (
                lambda r: verdict(r <= 1.5, f"{r:.2f}×"))(med(per_round(b[n], g, lambda a, c: a["p99"] / c["p99"])))))
    for text, check in checks:
        lines.append(f"| {text} | " + " | ".join(check(n) for n in [PROXY, BASELINE] if n in names) + " |")
    lines.append("")

    for name in [PROXY, BASELINE]:
        if name in facts["rss_idle_kib"]:
            lines.append(f"- {name} RSS: idle {facts['rss_idle_kib'][name] / 1024:.1f} MiB; with 1000 connections "
                         f"{facts['rss_1000_kib'].get(name, 0) / 1024:.1f} MiB; peak of the 20 ms instance "
                         f"{facts['rss_peak_kib'][name] / 1024:.1f} MiB")
    lines.append(f"- getToken calls: {facts['upstream_gettoken_calls']} at the fast upstream "
                 f"({2 * len(facts['binaries'])} proxies), {facts['slow_gettoken_calls']} at the slow one "
                 f"({len(facts['binaries'])}); token fetches counted by the proxies: {facts['fetches']}")
    text = "\n".join(lines)
    print()
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
