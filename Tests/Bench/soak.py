#!/usr/bin/env python3
"""make soak: the release proxy in front of a healthy local nginx for minutes,
then a burst of new connections, with a verdict that can gate.

Phase 1: `wrk -t2 -c64` for SOAK_PHASE1 seconds (default 125: past libcurl's
118 s connection age, so the upstream connections opened at the start are
old when phase 2 begins). Phase 2 right after it, for SOAK_PHASE2 seconds
(default 50): `wrk -t2 -c500` beside `wrk -t1 -c50 -H 'Connection: close'`
(a new client connection per request). Both wrk runs use `--timeout 35s`, so
an answer held for the proxy's 30 s upstream timeout counts as a slow answer
(and a 504), not as a wrk timeout.

Measured before the load, at peak (sampled every second of phase 2), a few
seconds after it (SOAK_SETTLE, default 3), and again once idle upstream
connections should be gone: the proxy closes them after
--upstream-idle-timeout SOAK_PROXY_IDLE (default 5 s) where it has the flag,
nginx after SOAK_UPSTREAM_IDLE (its keep-alive timeout, default 15 s). Read:
the proxy's RSS, descriptors, sockets to the upstream and from clients (with
`ss`), the open-connections gauge, answers by status from /_proxy/metrics;
the access log's non-200 lines (the proxy logs at SOAK_LOG_LEVEL, default
info); the SIGTERM shutdown time and its `stopped clean=` line. Exit status 1
when a target is missed: no wrk errors, no 5xx, no answer slower than
SOAK_MAX_LATENCY (default 5 s), the gauge and descriptors back to where they
started, a clean stop within SOAK_MAX_STOP (default 3 s). SOAK_KEEP=1 keeps
the logs.

Everything listens on 127.0.0.1; every process started here is stopped on
exit, on Ctrl-C and on SIGTERM.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import shutil
import time
import urllib.request
import datetime

from bench import BINARY, free_port, payment_json, rss_kib, to_ms, wait_port, write_upstream_conf

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def setting(name, default):
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        sys.exit(f"{name}={value!r}: a number of seconds is expected")
    if number <= 0:
        sys.exit(f"{name}={value!r}: must be above 0")
    return number


PHASE1 = int(setting("SOAK_PHASE1", 125))
PHASE2 = int(setting("SOAK_PHASE2", 50))
UPSTREAM_IDLE = int(setting("SOAK_UPSTREAM_IDLE", 15))
PROXY_IDLE = setting("SOAK_PROXY_IDLE", 5)
SETTLE = setting("SOAK_SETTLE", 3)
MAX_LATENCY = setting("SOAK_MAX_LATENCY", 5)
MAX_STOP = setting("SOAK_MAX_STOP", 3)
LOG_LEVEL = os.environ.get("SOAK_LOG_LEVEL") or "info"
WRK_TIMEOUT = "35s"


class Stopped(Exception):
    """SIGTERM or SIGHUP: clean up as for Ctrl-C."""


def on_signal(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


class Processes:
    """Everything started here, each in its own session so that a terminal's
    Ctrl-C reaches only this script, which then stops them."""

    def __init__(self):
        self.running = []

    def start(self, args, **kwargs):
        p = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.running.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.running):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.running:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def parse_metrics(text):
    """The values the soak reads from /_proxy/metrics."""
    m = {"status": {}, "open_connections": None, "upstream_opened": None, "slower_than_1s": 0,
         "slower_than_5s": 0, "slower_than_10s": 0, "token_fetches": 0}
    buckets, count = {}, 0
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, _, value = line.rpartition(" ")
        value = float(value)
        name, _, labels = name_labels.partition("{")
        if name == "iamport_proxy_requests_total":
            status = re.search(r'status="(\d+)"', labels).group(1)
            m["status"][status] = m["status"].get(status, 0) + int(value)
        elif name == "iamport_proxy_open_connections":
            m["open_connections"] = int(value)
        elif name == "iamport_proxy_upstream_connections_opened":
            m["upstream_opened"] = int(value)
        elif name == "iamport_proxy_token_fetches_total":
            m["token_fetches"] += int(value)
        elif name == "iamport_proxy_request_duration_seconds_bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            if le != "+Inf":
                buckets[float(le)] = int(value)
        elif name == "iamport_proxy_request_duration_seconds_count":
            count = int(value)
    for limit, key in [(1.0, "slower_than_1s"), (5.0, "slower_than_5s"), (10.0, "slower_than_10s")]:
        if limit in buckets:
            m[key] = count - buckets[limit]
    return m


def sockets(port, side):
    """TCP sockets on 127.0.0.1 by state, seen from the proxy: side "dport"
    for its connections to the upstream, "sport" for its clients'."""
    out = subprocess.run(["ss", "-H", "-tan", f"( {side} = :{port} )"], capture_output=True, text=True).stdout
    states = {}
    for line in out.splitlines():
        state = line.split()[0]
        if state not in ("LISTEN", "TIME-WAIT"):
            states[state] = states.get(state, 0) + 1
    return states


class Probe:
    """One look at the running proxy."""

    def __init__(self, pid, proxy_port, upstream_port):
        self.pid, self.proxy_port, self.upstream_port = pid, proxy_port, upstream_port

    def sample(self):
        s = {"rss_kib": rss_kib(self.pid), "fds": len(os.listdir(f"/proc/{self.pid}/fd"))}
        s["upstream"] = sockets(self.upstream_port, "dport")
        s["clients"] = sockets(self.proxy_port, "sport")
        _, text = fetch(f"http://127.0.0.1:{self.proxy_port}/_proxy/metrics")
        s["metrics"] = parse_metrics(text)
        # The scrape's own connection is open while the gauge is read.
        s["gauge"] = s["metrics"]["open_connections"] - 1
        return s


def describe(s):
    up = sum(s["upstream"].values())
    up_states = ", ".join(f"{k} {v}" for k, v in sorted(s["upstream"].items())) or "none"
    cl = sum(s["clients"].values())
    return (f"RSS {s['rss_kib'] / 1024:.1f} MiB, descriptors {s['fds']}, upstream sockets {up} ({up_states}), "
            f"client sockets {cl}, iamport_proxy_open_connections {s['gauge']}")


def start_wrk(procs, url, threads, connections, seconds, extra=()):
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", WRK_TIMEOUT,
            *extra, url]
    return args, procs.start(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(args, p, seconds):
    out, _ = p.communicate(timeout=seconds + 60)
    r = {"command": " ".join(a if " " not in a else f"'{a}'" for a in args), "output": out}
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket"] = dict(zip(["connect", "read", "write", "timeout"], (int(x) for x in m.groups()))) if m else \
        {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    r["max_ms"] = to_ms(m.group(3)) if m else 0.0
    m = re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M)
    r["p99_ms"] = to_ms(m.group(1)) if m else 0.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    r["complete"] = m is not None
    if not m:
        print(out, file=sys.stderr)
    return r


def wrk_line(r):
    s = r["socket"]
    return (f"{r['requests']} requests ({r['rps']:.0f}/s), socket errors connect {s['connect']} read {s['read']} "
            f"write {s['write']} timeout {s['timeout']}, non-2xx/3xx {r['non2xx']}, p99 {r['p99_ms']:.1f} ms, "
            f"max {r['max_ms'] / 1000:.2f} s")


def access_log_summary(path):
    """The access log holds only non-200 lines (the rest are filtered out as
    they are written): answers by status and error, and the slow ones."""
    by = {}
    slow = []
    stopped = None
    with open(path, errors="replace") as f:
        for line in f:
            if " request " in line and "status=" in line:
                status = re.search(r"\bstatus=(\d+)", line).group(1)
                error = re.search(r"\berror=(\S+)", line)
                key = f"{status} {error.group(1) if error else '-'}"
                by[key] = by.get(key, 0) + 1
                d = re.search(r"\bduration_ms=([\d.]+)", line)
                if d and float(d.group(1)) >= MAX_LATENCY * 1000:
                    answered = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
                    slow.append((answered - float(d.group(1)) / 1000, answered))
            elif " stopped" in line:
                stopped = line.strip()
    return by, slow, stopped


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    for tool in ["nginx", "wrk", "ss", "grep"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (make soak installs it)")
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"{BINARY} is missing: build it with `make release`")
    # Also when started in the background, where SIGINT comes ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    work = tempfile.mkdtemp(prefix="iamport-proxy-soak-")
    procs = Processes()
    try:
        ok = run(work, procs)
    except (KeyboardInterrupt, Stopped) as e:
        print(f"\ninterrupted ({str(e) or 'SIGINT'}): stopping everything", file=sys.stderr)
        ok = None
    finally:
        procs.stop_all()
        keep = os.environ.get("SOAK_KEEP")
        if keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(130 if ok is None else 0 if ok else 1)


def run(work, procs):
    with open(os.path.join(work, "payment.json"), "w") as f:
        f.write(payment_json())
    up, px = free_port(), free_port()
    # The upstream as in bench.py, with a keep-alive timeout short enough to
    # see the pool drain within the run.
    write_upstream_conf(work, payment_json(), f"listen 127.0.0.1:{up} backlog=4096;",
                        keepalive_requests=100000000, keepalive_timeout=UPSTREAM_IDLE)
    procs.start(["nginx", "-c", f"{work}/upstream.conf", "-g", "daemon off;"],
                stdout=open(f"{work}/upstream.out", "w"), stderr=subprocess.STDOUT)
    wait_port(up)

    env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "soak-key", "IAMPORT_API_SECRET": "soak-secret"}
    args = [BINARY, "--listen", f"127.0.0.1:{px}", "--upstream", f"http://127.0.0.1:{up}", "--log-level", LOG_LEVEL]
    # Where the proxy closes idle upstream connections itself, it does so
    # before nginx would; older builds leave it to nginx.
    idle = UPSTREAM_IDLE
    if "--upstream-idle-timeout" in subprocess.run([BINARY, "--help"], capture_output=True, text=True).stdout:
        args += ["--upstream-idle-timeout", f"{PROXY_IDLE:g}"]
        idle = min(idle, PROXY_IDLE)
    # Only the access log's non-200 lines are kept: a line per request for
    # minutes would be gigabytes.
    proxy = procs.start(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log_path = os.path.join(work, "proxy.log")
    procs.start(["grep", "-v", "-F", " status=200 "], stdin=proxy.stderr, stdout=open(log_path, "w"))
    proxy.stderr.close()
    wait_port(px)
    deadline = time.monotonic() + 10
    while True:
        try:
            if fetch(f"http://127.0.0.1:{px}/_proxy/readyz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the proxy is not ready after 10 s")
        time.sleep(0.1)
    # A few requests on new connections first, so that every event loop has
    # made its one-time descriptors (libcurl's wake-up socket pair) before
    # the count starts.
    for _ in range(8):
        fetch(f"http://127.0.0.1:{px}/payments/imp_warmup")
    time.sleep(1)

    print(f"soak: phase 1 {PHASE1} s, phase 2 {PHASE2} s, upstream keep-alive timeout {UPSTREAM_IDLE} s, "
          f"proxy log level {LOG_LEVEL}; load average {load_average()}", flush=True)
    print(f"proxy: {' '.join(args[1:])}", flush=True)
    probe = Probe(proxy.pid, px, up)
    before = probe.sample()
    print(f"before:         {describe(before)}", flush=True)

    url = f"http://127.0.0.1:{px}/payments/imp_soak"
    started = time.monotonic()
    a1, w1 = start_wrk(procs, url, 2, 64, PHASE1)
    phase1 = wrk_result(a1, w1, PHASE1)
    print(f"phase 1: {phase1['command']}\n  {wrk_line(phase1)}", flush=True)

    a2, w2 = start_wrk(procs, url, 2, 500, PHASE2)
    a3, w3 = start_wrk(procs, url, 1, 50, PHASE2, ["-H", "Connection: close"])
    phase2_start = time.monotonic()
    phase2_wall = time.time()
    samples = []
    while time.monotonic() - phase2_start < PHASE2 - 1 and w2.poll() is None:
        time.sleep(1)
        try:
            samples.append(probe.sample())
        except OSError:
            pass  # a scrape that timed out under load; the next one counts
    load_at_peak = load_average()
    phase2 = wrk_result(a2, w2, PHASE2)
    phase2_close = wrk_result(a3, w3, PHASE2)
    print(f"phase 2: {phase2['command']}\n  {wrk_line(phase2)}", flush=True)
    print(f"         {phase2_close['command']}\n  {wrk_line(phase2_close)}", flush=True)
    loaded = time.monotonic() - started

    peak = {
        "rss_kib": max((s["rss_kib"] for s in samples), default=0),
        "fds": max((s["fds"] for s in samples), default=0),
        "upstream": {"max": max((sum(s["upstream"].values()) for s in samples), default=0)},
        "clients": {"max": max((sum(s["clients"].values()) for s in samples), default=0)},
        "gauge": max((s["gauge"] for s in samples), default=0),
    }
    print(f"peak (phase 2, {len(samples)} samples, load average {load_at_peak}): RSS {peak['rss_kib'] / 1024:.1f} MiB, "
          f"descriptors {peak['fds']}, upstream sockets {peak['upstream']['max']}, "
          f"client sockets {peak['clients']['max']}, iamport_proxy_open_connections {peak['gauge']}", flush=True)

    time.sleep(SETTLE)
    after = probe.sample()
    print(f"after {SETTLE:.0f} s:      {describe(after)}", flush=True)
    time.sleep(max(0.0, idle + 3 - SETTLE))
    drained = probe.sample()
    print(f"after {max(SETTLE, idle + 3):.0f} s:      {describe(drained)}", flush=True)

    statuses = {k: v - before["metrics"]["status"].get(k, 0) for k, v in drained["metrics"]["status"].items()}
    statuses = {k: v for k, v in statuses.items() if v}
    print("answers by status (metrics, the soak's scrapes included): "
          + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), flush=True)
    dm = drained["metrics"]
    print(f"answers slower than 1 s / 5 s / 10 s (metrics): {dm['slower_than_1s']} / {dm['slower_than_5s']} / "
          f"{dm['slower_than_10s']}; upstream connections opened: {dm['upstream_opened']}; "
          f"token fetches: {dm['token_fetches']}", flush=True)

    stop_started = time.monotonic()
    proxy.send_signal(signal.SIGTERM)
    try:
        code = proxy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        code = None
    stop_seconds = time.monotonic() - stop_started
    time.sleep(0.2)  # grep writes the last lines at end of input
    by_error, slow_lines, stopped = access_log_summary(log_path)
    print(f"shutdown: SIGTERM to exit {stop_seconds:.2f} s, exit status {code}; {stopped or 'no stopped line'}",
          flush=True)
    print("access log, non-200 answers by status and error: "
          + (", ".join(f"{k} {v}" for k, v in sorted(by_error.items())) or "none"), flush=True)
    timeouts = sum(v for k, v in by_error.items() if k.startswith("504 upstream_timeout"))
    if slow_lines:
        # When each slow answer began waiting, in seconds from phase 2's start.
        began = {}
        for start, _ in slow_lines:
            offset = round(start - phase2_wall)
            began[offset] = began.get(offset, 0) + 1
        print(f"access log, answers slower than {MAX_LATENCY:.0f} s: {len(slow_lines)}; by when they began waiting, "
              "from phase 2's start: " + ", ".join(f"{k:+d} s: {v}" for k, v in sorted(began.items())), flush=True)
    print(f"load average at the end {load_average()}; loaded for {loaded:.0f} s", flush=True)

    runs = [phase1, phase2, phase2_close]
    fivexx = sum(v for k, v in statuses.items() if k.startswith("5"))
    not_upstream = lambda s: s["fds"] - sum(s["upstream"].values())
    targets = [
        ("every wrk run complete, no socket errors (connect, read, write, timeout)",
         all(r["complete"] for r in runs) and sum(sum(r["socket"].values()) for r in runs) == 0,
         " / ".join(str(sum(r["socket"].values())) if r["complete"] else "no summary" for r in runs)),
        ("no non-2xx/3xx answers at wrk", sum(r["non2xx"] for r in runs) == 0,
         " / ".join(str(r["non2xx"]) for r in runs)),
        ("no 5xx from the proxy (metrics)", fivexx == 0, f"{fivexx}, of which 504 upstream_timeout {timeouts}"),
        (f"slowest answer under {MAX_LATENCY:.0f} s (wrk max)", max(r["max_ms"] for r in runs) < MAX_LATENCY * 1000,
         f"{max(r['max_ms'] for r in runs) / 1000:.2f} s"),
        (f"open-connections gauge back to {before['gauge']} {SETTLE:.0f} s after the load",
         after["gauge"] == before["gauge"], f"{after['gauge']}"),
        (f"descriptors back to the start {SETTLE:.0f} s after, besides upstream sockets",
         not_upstream(after) <= not_upstream(before), f"{not_upstream(after)} vs {not_upstream(before)}"),
        (f"no upstream socket left {max(SETTLE, idle + 3):.0f} s after, descriptors back to the start",
         not drained["upstream"] and drained["fds"] <= not_upstream(before),
         f"upstream sockets {sum(drained['upstream'].values())}, descriptors {drained['fds']} vs {not_upstream(before)}"),
        (f"SIGTERM: clean stop within {MAX_STOP:.0f} s", code == 0 and stopped is not None and "clean=true" in stopped
         and stop_seconds <= MAX_STOP, f"{stop_seconds:.2f} s, exit {code}, "
         f"{'clean=true' if stopped and 'clean=true' in stopped else 'clean=false' if stopped else 'no stopped line'}"),
    ]
    print("\nverdict:")
    for name, met, value in targets:
        print(f"  {'met   ' if met else 'MISSED'}  {name}: {value}")
    ok = all(met for _, met, _ in targets)
    print("soak: " + ("all targets met" if ok else "targets missed"), flush=True)
    if os.environ.get("SOAK_KEEP"):
        for r in runs:
            with open(os.path.join(work, "wrk.out"), "a") as f:
                f.write(r["command"] + "\n" + r["output"] + "\n")
    return ok


if __name__ == "__main__":
    main()
