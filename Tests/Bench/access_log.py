#!/usr/bin/env python3
"""The access log's cost: iamport-proxy with the access log on (`--log-level
info`, the default, standard error to a file) and off (`--log-level warning`)
in front of the same fast local upstream (nginx answering an iamport-sized
payment from memory), driven by wrk at 1 and 64 connections. Rows are
shuffled within a round and rounds repeated; compare within one run only.

    python3 Tests/Bench/access_log.py [--binary NAME=PATH ...] [--seconds 5] [--rounds 4]

Several binaries (say, before and after a change) run side by side, each
with the log on and off, so that their ratios come from the same run; the
on and off runs of a binary are back to back, and the ratios are per pair.
Everything listens on 127.0.0.1; every process started here is stopped.
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BINARY, Processes, cpu_ticks, free_port, payment_json, run_wrk, wait_port, write_upstream_conf  # noqa: E402


class Started(Processes):
    """bench.Processes, with a pipe in or a given standard output."""

    def start(self, name, args, env=None, log=None, stdin=False, stdout=None):
        if stdout is None:
            stdout = open(log, "w") if log else subprocess.DEVNULL
        p = subprocess.Popen(args, env=env, stdin=subprocess.PIPE if stdin else None, stdout=stdout,
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.running.append((name, p))
        return p


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", action="append", default=[], help="NAME=PATH, repeatable (default: the release build)")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", default="1,64")
    parser.add_argument("--sink", choices=["file", "pipe"], default="file",
                        help="standard error to a file, or through a pipe to a reader (cat) writing the file")
    args = parser.parse_args()
    binaries = [b.split("=", 1) for b in args.binary] or [["release", BINARY]]
    for tool in ["nginx", "wrk"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (WITH_BENCH=1 .ci/install-deps.sh installs it)")
    work = tempfile.mkdtemp(prefix="iamport-proxy-alog-")
    procs = Started()
    try:
        run(work, procs, binaries, args)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def run(work, procs, binaries, args):
    payment = payment_json()
    up = free_port()
    write_upstream_conf(work, payment, f"listen 127.0.0.1:{up} backlog=4096;")
    procs.start("upstream", ["nginx", "-c", f"{work}/upstream.conf", "-g", "daemon off;"], log=f"{work}/upstream.out")
    wait_port(up)

    targets = []  # (name, level, port, process, log path)
    for name, binary in binaries:
        for level in ["info", "warning"]:
            port = free_port()
            env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "bench-key", "IAMPORT_API_SECRET": "bench-secret",
                   "IAMPORT_PROXY_LOG_LEVEL": level}
            log = f"{work}/{name}-{level}.log"
            args_ = [binary, "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{up}"]
            if args.sink == "pipe":
                reader = procs.start(f"{name}-{level}-reader", ["sh", "-c", f"exec cat > {log}"], stdin=True)
                p = procs.start(f"{name}-{level}", args_, env=env, stdout=reader.stdin)
                reader.stdin.close()
            else:
                p = procs.start(f"{name}-{level}", args_, env=env, log=log)
            targets.append((name, level, port, p, log))
    for _, _, port, _, _ in targets:
        wait_port(port)
    time.sleep(1)
    for _, _, port, _, _ in targets:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_proxy/readyz", timeout=5) as r:
            assert r.status == 200

    conns = [int(c) for c in args.connections.split(",")]
    results = {}  # (name, level, conns) -> [(rps, cpu s per 10k, p50 ms)]
    load = []
    for rnd in range(args.rounds):
        # The log-on and log-off runs of one binary and connection count
        # back to back (in random order), so that their ratio sees the same load.
        pairs = [([t for t in targets if t[0] == name], c) for name, _ in binaries for c in conns]
        random.shuffle(pairs)
        rows = []
        for pair, c in pairs:
            random.shuffle(pair)
            rows += [(t, c) for t in pair]
        for (name, level, port, p, _), c in rows:
            before = cpu_ticks([p.pid])
            r = run_wrk(f"http://127.0.0.1:{port}/payments/imp_bench", "GET", c, args.seconds)
            ticks = cpu_ticks([p.pid]) - before
            cpu = ticks / os.sysconf("SC_CLK_TCK") / max(r["requests"], 1) * 10_000
            results.setdefault((name, level, c), []).append((r["rps"], cpu, r["p50"], r["errors"]))
        load.append(os.getloadavg()[0])
        print(f"round {rnd + 1}/{args.rounds} done, load {load[-1]:.2f}", file=sys.stderr)

    print(f"wrk {args.seconds} s per run, {args.rounds} interleaved rounds, standard error to a {args.sink}; "
          "load average after each round: "
          + ", ".join(f"{x:.1f}" for x in load))
    print()
    print("| binary | conns | log | req/s median (min–max) | CPU s / 10k req median (min–max) | p50 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in binaries:
        for c in conns:
            for level in ["info", "warning"]:
                rs = results[(name, level, c)]
                rps = [x[0] for x in rs]
                cpu = [x[1] for x in rs]
                print(f"| {name} | {c} | {'on' if level == 'info' else 'off'} | {statistics.median(rps):.0f} "
                      f"({min(rps):.0f}–{max(rps):.0f}) | {statistics.median(cpu):.3f} ({min(cpu):.3f}–{max(cpu):.3f}) "
                      f"| {statistics.median(x[2] for x in rs):.3f} | {sum(x[3] for x in rs)} |")
    print()
    for name, _ in binaries:
        for c in conns:
            on, off = results[(name, "info", c)], results[(name, "warning", c)]
            # Per round: the two runs of a round are back to back.
            rps = [a[0] / b[0] for a, b in zip(on, off)]
            cpu = [a[1] / b[1] for a, b in zip(on, off)]
            p50 = [(a[2] - b[2]) * 1000 for a, b in zip(on, off)]
            print(f"- {name}, {c} conns, log on / off: req/s {statistics.median(rps):.3f} "
                  f"({min(rps):.3f}–{max(rps):.3f}), CPU per request {statistics.median(cpu):.3f} "
                  f"({min(cpu):.3f}–{max(cpu):.3f}), p50 {statistics.median(p50):+.0f} µs")
    for name, level, _, _, log in targets:
        if level == "info":
            with open(log, "rb") as f:
                lines = sum(1 for line in f if b" request " in line or b'"msg":"request"' in line)
            print(f"- {name}: {lines} access lines written")


if __name__ == "__main__":
    main()
