#!/usr/bin/env python3
"""Per-request costs of each event-loop driver (IAMPORT_PROXY_TEST_LOOP_ENGINE)
under GET against the plain nginx upstream: CPU, context switches and
syscalls from perf stat on the proxy process while wrk runs, drivers
interleaved over rounds. Usage: loop_engines.py BINARY epoll,dispatch[,...] [ROUNDS] [CONNECTIONS]"""
import os, subprocess, sys, time, tempfile, urllib.request, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench

BIN = sys.argv[1]
ENGINES = sys.argv[2].split(",")
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
CONNS = int(sys.argv[4]) if len(sys.argv) > 4 else 64
work = tempfile.mkdtemp(prefix="loop-engine-profile-")
procs = bench.Processes()
try:
    open(os.path.join(work, "payment.json"), "w").write(bench.payment_json())
    names = ["up", "up_tls", "up_slow", "ngx", "ngx_tls", "ngx_slow", "hap", "hap_tls", "hap_slow"]
    p = {n: bench.free_port() for n in names}
    ssl = lambda *a: subprocess.run(["openssl", *a], cwd=work, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "server.key", "-out", "server.pem", "-subj", "/CN=127.0.0.1")
    bench.write_configs(work, p, bench.payment_json())
    procs.start("upstream", ["nginx", "-c", f"{work}/upstream.conf", "-g", "daemon off;"], log=f"{work}/up.out")
    bench.wait_port(p["up"])
    proxies = {}
    for e in ENGINES:
        port = bench.free_port()
        env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "k", "IAMPORT_API_SECRET": "s", "IAMPORT_PROXY_TEST_LOOP_ENGINE": e}
        proc = procs.start(e, [BIN, "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{p['up']}"], env=env, log=f"{work}/{e}.log")
        proxies[e] = (proc, port)
    for e, (proc, port) in proxies.items():
        bench.wait_port(port)
    time.sleep(1)
    for e, (proc, port) in proxies.items():
        bench.run_wrk(f"http://127.0.0.1:{port}/payments/imp_bench", "GET", 16, 1)
    rows = {e: [] for e in ENGINES}
    for r in range(ROUNDS):
        for e in ENGINES:
            proc, port = proxies[e]
            out = f"{work}/perf-{e}-{r}.txt"
            perf = subprocess.Popen(["perf", "stat", "-x,", "-o", out, "-e",
                                     "task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter",
                                     "-p", str(proc.pid), "--", "sleep", "5"])
            res = bench.run_wrk(f"http://127.0.0.1:{port}/payments/imp_bench", "GET", CONNS, 5)
            perf.wait()
            open(f"{work}/{e}.log", "w").close()
            stat = {}
            for line in open(out):
                parts = line.strip().split(",")
                if len(parts) > 3 and parts[0] and parts[0][0].isdigit():
                    stat[parts[2]] = float(parts[0])
            n = max(res["requests"], 1)
            row = {"rps": res["rps"], "p50": res["p50"] * 1000, "cpu_us": stat.get("task-clock", 0) * 1000 / n,
                   "cs": stat.get("context-switches", 0) / n, "sys": stat.get("raw_syscalls:sys_enter", 0) / n,
                   "mig": stat.get("cpu-migrations", 0) / n}
            rows[e].append(row)
            print(e, r + 1, {k: round(v, 2) for k, v in row.items()}, flush=True)
    print(f"\nGET plain, {CONNS} connections, 5 s per run, {ROUNDS} interleaved rounds; medians (min-max) per request")
    print("| engine | req/s | p50 µs | CPU µs/request | context switches/request | syscalls/request | migrations/request |")
    print("|---|---|---|---|---|---|---|")
    for e in ENGINES:
        cells = []
        for k, f in [("rps", "{:.0f}"), ("p50", "{:.0f}"), ("cpu_us", "{:.1f}"), ("cs", "{:.2f}"), ("sys", "{:.2f}"), ("mig", "{:.3f}")]:
            v = [x[k] for x in rows[e]]
            cells.append(f"{f.format(statistics.median(v))} ({f.format(min(v))}–{f.format(max(v))})")
        print(f"| {e} | " + " | ".join(cells) + " |")
finally:
    procs.stop_all()
