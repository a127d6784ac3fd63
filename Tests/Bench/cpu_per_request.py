"""CPU per request of nginx and iamport-proxy under the same load, one at a time.

Starts the bench's fast upstream and its nginx reverse proxy (bench.py's
configuration files) and one iamport-proxy binary, then for each contender
runs wrk and, meanwhile, `perf stat -e task-clock,context-switches` on its
processes: CPU microseconds and context switches per request.

    python3 Tests/Bench/cpu_per_request.py [BINARY ...]

Several binaries are measured in turn, round after round (an A/B of two
builds). Environment: METHOD (POST or GET, default POST), UPSTREAM (plain or
tls), CONNS (64), DURATION (6 seconds, at least 3), ROUNDS (2), RECORD=path (also `perf record
-g` the last binary into that file; with TAIL, its first, cold run), TAIL=1
(instead: three wrk runs back to back per contender, p50 and p99 each, to
see a cold pool's first run), SYSCALLS=1 (also count each contender's system
calls per request, by name, with the kernel's syscall tracepoints).
Needs nginx, wrk, openssl and perf; everything on 127.0.0.1, stopped at the end.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

METHOD = os.environ.get("METHOD", "POST")
UPSTREAM = os.environ.get("UPSTREAM", "plain")
CONNS = os.environ.get("CONNS", "64")
DURATION = max(3, int(os.environ.get("DURATION", "6")))
# perf stat watches the middle of each wrk run: from its first second to a second before its end.
WINDOW = DURATION - 2
ROUNDS = int(os.environ.get("ROUNDS", "2"))
PATH = "/payments/cancel" if METHOD == "POST" else "/payments/imp_bench"


def wrk(port, seconds):
    cmd = ["wrk", "-t2", f"-c{CONNS}", f"-d{seconds}s", "--latency"]
    if METHOD == "POST":
        cmd += ["-s", bench.POST_SCRIPT]
    return cmd + [f"http://127.0.0.1:{port}{PATH}"]


def measure(name, port, pids):
    load = subprocess.Popen(wrk(port, DURATION), stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    stat = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock,context-switches",
                           "-p", ",".join(map(str, pids)), "--", "sleep", str(WINDOW)],
                          capture_output=True, text=True)
    out = load.communicate()[0]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    values = {}
    for line in stat.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 3 and fields[0].replace(".", "").isdigit():
            values[fields[2]] = float(fields[0])
    requests = rps * WINDOW
    if os.environ.get("SYSCALLS"):
        print_syscalls(name, port, pids)
    print(f"{name:40s} {rps:9.0f} req/s  cpu {values.get('task-clock', 0) * 1000 / requests:6.1f} µs/request"
          f"  context switches {values.get('context-switches', 0) / requests:5.2f}/request", flush=True)


SYSCALL_NAMES = ["read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
                 "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "close", "futex", "clock_gettime",
                 "ioctl", "poll", "getsockopt", "setsockopt", "socket", "connect"]


def print_syscalls(name, port, pids):
    """A second wrk run, counting each system call by name: calls per request."""
    load = subprocess.Popen(wrk(port, DURATION), stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    events = ",".join(f"syscalls:sys_enter_{n}" for n in SYSCALL_NAMES) + ",raw_syscalls:sys_enter"
    stat = subprocess.run(["perf", "stat", "-x,", "-e", events, "-p", ",".join(map(str, pids)),
                           "--", "sleep", str(WINDOW)], capture_output=True, text=True)
    out = load.communicate()[0]
    requests = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) * WINDOW
    counts = []
    for line in stat.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 3 and fields[0].isdigit() and int(fields[0]) > 0:
            counts.append(f"{fields[2].split(':')[-1].replace('sys_enter_', '')} {int(fields[0]) / requests:.2f}")
    print(f"{name:40s} syscalls per request: " + ", ".join(counts), flush=True)


def main():
    binaries = sys.argv[1:] or [bench.BINARY]
    work = tempfile.mkdtemp(prefix="iamport-proxy-cpu-")
    procs = bench.Processes()
    try:
        tls = UPSTREAM != "plain"
        p, url, extra = bench.start_fast_upstream(work, procs, tls)
        ngx = procs.start("nginx", ["nginx", "-c", f"{work}/nginx-proxy.conf", "-g", "daemon off;"], log=f"{work}/nginx.out")
        contenders = {"nginx": (p["ngx_tls"] if tls else p["ngx"], None)}
        for index, binary in enumerate(binaries):
            port = bench.free_port()
            env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "bench-key", "IAMPORT_API_SECRET": "bench-secret"}
            proc = procs.start(f"proxy{index}", [binary, "--listen", f"127.0.0.1:{port}", "--upstream", url, *extra],
                               env=env, log=f"{work}/proxy{index}.log")
            contenders[f"{binary}"] = (port, proc)
        for port, _ in contenders.values():
            bench.wait_port(port)
        time.sleep(1)
        if os.environ.get("TAIL"):
            for name, (port, proc) in contenders.items():
                for run in range(3):
                    recorder = None
                    if os.environ.get("RECORD") and run == 0 and proc is not None:
                        recorder = subprocess.Popen(["perf", "record", "-F", "2999", "-g", "-o", os.environ["RECORD"],
                                                     "-p", str(proc.pid), "--", "sleep", str(DURATION)],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(0.5)
                    out = subprocess.run(wrk(port, DURATION), capture_output=True, text=True).stdout
                    if recorder:
                        recorder.wait()
                    rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
                    p50 = re.search(r"\n\s+50%\s+(\S+)", out).group(1)
                    p99 = re.search(r"\n\s+99%\s+(\S+)", out).group(1)
                    print(f"{name:40s} run {run}: {rps} req/s, p50 {p50}, p99 {p99}", flush=True)
            return
        for _ in range(ROUNDS):
            for name, (port, proc) in contenders.items():
                pids = bench.process_tree(ngx.pid) if proc is None else [proc.pid]
                measure(name, port, pids)
        if os.environ.get("RECORD"):
            port, proc = list(contenders.values())[-1]
            load = subprocess.Popen(wrk(port, DURATION + 2), stdout=subprocess.DEVNULL)
            time.sleep(1)
            subprocess.run(["perf", "record", "-F", "2999", "-g", "-o", os.environ["RECORD"], "-p", str(proc.pid),
                            "--", "sleep", str(DURATION)], capture_output=True)
            load.wait()
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
