"""CPU and wall time per request when every request needs a new upstream TLS
connection, with a realistic trust store: the system CA bundle plus the test
CA (about 140 certificates) as --upstream-ca-file.

    python3 Tests/Bench/new_connection_cost.py BINARY [BINARY ...]

The upstream (nginx, TLS) closes each connection after one request
(keepalive_requests 1), so each of the 40 requests opens a connection; the
proxy's CPU comes from /proc. Needs nginx and openssl; 127.0.0.1 only.
"""
import os
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
REQUESTS = 40


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    work = tempfile.mkdtemp(prefix="iamport-proxy-connect-")
    procs = bench.Processes()
    try:
        bench.make_certificates(work)
        with open(os.path.join(work, "bundle.pem"), "w") as f:
            f.write(open(SYSTEM_BUNDLE).read() + open(os.path.join(work, "ca.pem")).read())
        up = bench.free_port()
        bench.write_upstream_conf(work, bench.payment_json(), f"""listen 127.0.0.1:{up} ssl;
        ssl_certificate {work}/server.pem;
        ssl_certificate_key {work}/server.key;""", keepalive_requests=1)
        procs.start("upstream", ["nginx", "-c", f"{work}/upstream.conf", "-g", "daemon off;"], log=f"{work}/upstream.out")
        bench.wait_port(up)
        for binary in sys.argv[1:]:
            port = bench.free_port()
            env = {"PATH": os.environ["PATH"], "IAMPORT_API_KEY": "bench-key", "IAMPORT_API_SECRET": "bench-secret"}
            proc = procs.start(binary, [binary, "--listen", f"127.0.0.1:{port}", "--upstream", f"https://127.0.0.1:{up}",
                                        "--upstream-ca-file", f"{work}/bundle.pem"], env=env, log=f"{work}/proxy-{port}.log")
            bench.wait_port(port)
            time.sleep(2)  # the first token fetch
            cpu, wall = cpu_seconds(proc.pid), time.time()
            for _ in range(REQUESTS):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/payments/imp_bench", timeout=10) as answer:
                    answer.read()
            print(f"{binary}: {(cpu_seconds(proc.pid) - cpu) / REQUESTS * 1000:.1f} ms CPU, "
                  f"{(time.time() - wall) / REQUESTS * 1000:.1f} ms wall per request, each on a new TLS connection", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
