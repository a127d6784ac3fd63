"""User-space instructions per request of iamport-proxy builds, under callgrind.

The machine is shared and noisy, so timed runs need many rounds to show a
few per cent; an instruction count does not move with the neighbours. Each
binary runs under `valgrind --tool=callgrind` with one event loop in front of
the bench's nginx upstream (bench.py's configuration), wrk warms it up, then
callgrind counts the instructions of a 10 s wrk run at 2 connections.
Prints instructions per request (the proxy's own code, the Swift runtime,
libc and libcurl; not the kernel) and, with TOP=n, the n functions with the
most instructions of their own per request.

    python3 Tests/Bench/instructions_per_request.py [BINARY ...]

Environment: METHOD (POST or GET, default POST), UPSTREAM (plain or tls),
SECONDS (10), TOP (0), KEEP=dir (keep the callgrind files there), NGINX=1
(also nginx as the bench's reverse proxy, one process, as the yardstick),
PROXY_ENV="NAME=VALUE ..." (added to each binary's environment, e.g.
IAMPORT_PROXY_LOG_LEVEL=notice to measure without the access log).
Needs valgrind, nginx, wrk and openssl; everything on 127.0.0.1, stopped at the end.
valgrind 3.19 cannot read Swift 6's DWARF 5, so each binary is measured
from a copy without debug information (its symbols stay).
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
SECONDS = int(os.environ.get("SECONDS", "10"))
TOP = int(os.environ.get("TOP", "0"))
PATH = "/payments/cancel" if METHOD == "POST" else "/payments/imp_bench"


def wrk(port, seconds):
    cmd = ["wrk", "-t1", "-c2", f"-d{seconds}s"]
    if METHOD == "POST":
        cmd += ["-s", bench.POST_SCRIPT]
    return cmd + [f"http://127.0.0.1:{port}{PATH}"]


def count(name, pid, port, out, index):
    """Instructions per request of the process `pid` under callgrind, listening on `port`."""
    subprocess.run(wrk(port, 3), capture_output=True, check=True)
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=True)
    result = subprocess.run(wrk(port, SECONDS), capture_output=True, text=True, check=True).stdout
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
    requests = int(re.search(r"(\d+) requests in", result).group(1))
    if "Non-2xx" in result:
        raise RuntimeError(f"{name}: answers other than 2xx:\n{result}")
    dump = out + ".1"
    for _ in range(100):
        if os.path.exists(dump) and os.path.getsize(dump) > 0:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    annotate = subprocess.run(["callgrind_annotate", dump], capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotate).group(1).replace(",", ""))
    print(f"{name}: {requests} requests, {total / requests:,.0f} instructions per request", flush=True)
    if TOP:
        rows = re.findall(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.+?)(?: \[.*\])?$", annotate, re.M)
        for n, fn in rows[1:TOP + 1]:
            print(f"    {int(n.replace(',', '')) / requests:8,.0f}  {fn.split(':', 1)[-1][:150]}")
    if os.environ.get("KEEP"):
        os.makedirs(os.environ["KEEP"], exist_ok=True)
        shutil.copy(dump, os.path.join(os.environ["KEEP"], f"callgrind-{index}.out"))


def measure_nginx(work, port, procs):
    out = os.path.join(work, "callgrind-nginx.out")
    proc = procs.start("nginx", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--instr-atstart=no",
                                 "nginx", "-c", f"{work}/nginx-proxy.conf", "-g", "daemon off; master_process off;"],
                       log=os.path.join(work, "nginx.out"))
    bench.wait_port(port, 60)
    count("nginx", proc.pid, port, out, "nginx")


def measure(binary, work, url, extra, procs, index):
    stripped = os.path.join(work, f"proxy{index}")
    subprocess.run(["objcopy", "--strip-debug", binary, stripped], check=True)
    out = os.path.join(work, f"callgrind{index}.out")
    port = bench.free_port()
    # SWIFT_BACKTRACE set: the proxy does not re-execute itself (CrashOutput), which valgrind cannot follow.
    env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "bench-key", "IAMPORT_API_SECRET": "bench-secret",
           "SWIFT_BACKTRACE": "enable=no"}
    env.update(item.split("=", 1) for item in os.environ.get("PROXY_ENV", "").split())
    proc = procs.start(f"proxy{index}", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                         "--instr-atstart=no", stripped, "--event-loops", "1",
                                         "--listen", f"127.0.0.1:{port}", "--upstream", url, *extra],
                       env=env, log=os.path.join(work, f"proxy{index}.log"))
    bench.wait_port(port, 60)
    count(binary, proc.pid, port, out, index)


def main():
    binaries = sys.argv[1:] or [bench.BINARY]
    work = tempfile.mkdtemp(prefix="iamport-proxy-instructions-")
    procs = bench.Processes()
    try:
        tls = UPSTREAM != "plain"
        p, url, extra = bench.start_fast_upstream(work, procs, tls)
        for index, binary in enumerate(binaries):
            measure(binary, work, url, extra, procs, index)
        if os.environ.get("NGINX"):
            measure_nginx(work, p["ngx_tls"] if tls else p["ngx"], procs)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
