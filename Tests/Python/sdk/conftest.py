"""Runs the fake iamport API and the real proxy binary on 127.0.0.1 for SDK tests."""
import os
import re
import subprocess
import time

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("IAMPORT_PROXY_BUILD_DIR", os.path.join(ROOT, ".build", "debug"))
API_KEY = "sdk-test-key"
API_SECRET = "sdk-test-secret-5e1f"
V2_SECRET = "sdk-test-v2-secret-8a4d"


class Running:
    def __init__(self, args, env=None):
        self.log_path = f"/tmp/iamport-proxy-sdk-{os.getpid()}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w+")
        full_env = {"PATH": os.environ.get("PATH", "")}
        full_env.update(env or {})
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                match = re.search(r"listening on [^ ]*:(\d+)", f.read())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("did not start: " + self.output())

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.process.terminate()
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.log.close()
        return code


@pytest.fixture
def fake():
    running = Running([os.path.join(BIN, "fake-iamport"), "--listen", "127.0.0.1:0",
                       "--api-key", API_KEY, "--api-secret", API_SECRET])
    yield running
    running.stop()
    os.unlink(running.log_path)


@pytest.fixture
def fake_v2():
    """The fake PortOne V2 API, accepting `Authorization: PortOne V2_SECRET`."""
    running = Running([os.path.join(BIN, "fake-iamport"), "--listen", "127.0.0.1:0", "--v2-secret", V2_SECRET])
    yield running
    running.stop()
    os.unlink(running.log_path)


def fake_v2_stats(fake):
    """The V2 fake's counters: arrivals, executions, replays, by key and by request."""
    return requests.post(f"http://127.0.0.1:{fake.port}/_fake/stats").json()


def fake_v2_requests(fake):
    """What reached the V2 fake (its control calls aside)."""
    return requests.post(f"http://127.0.0.1:{fake.port}/_fake/requests").json()["requests"]


def start_proxy(fake, **extra_env):
    env = {"IAMPORT_API_KEY": API_KEY, "IAMPORT_API_SECRET": API_SECRET,
           "IAMPORT_PROXY_UPSTREAM": f"http://127.0.0.1:{fake.port}",
           "IAMPORT_PROXY_LISTEN": "127.0.0.1:0", "IAMPORT_PROXY_LOG_LEVEL": "trace"}
    env.update(extra_env)
    proxy = Running([os.path.join(BIN, "iamport-proxy")], env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if requests.get(f"http://127.0.0.1:{proxy.port}/_proxy/readyz").status_code == 200:
            break
        time.sleep(0.05)
    return proxy


def fake_stats(fake):
    return requests.post(f"http://127.0.0.1:{fake.port}/_fake/stats").json()["response"]


def fake_requests(fake):
    """What reached the fake API (its control calls aside) and the tokens it issued."""
    return requests.post(f"http://127.0.0.1:{fake.port}/_fake/requests").json()["response"]


def assert_only_the_proxy_reached_the_api(fake, sdk_key, calls):
    """The API saw one getToken, the proxy's own with the proxy's key, and
    then exactly `calls` ((method, path) pairs), each with the proxy's token
    as `Authorization: Bearer` and nothing the SDK sent as a token."""
    seen = fake_requests(fake)
    assert len(seen["issued_tokens"]) == 1
    bearer = "Bearer " + seen["issued_tokens"][0]
    token_calls = [r for r in seen["requests"] if r["target"] == "/users/getToken"]
    assert len(token_calls) == 1, seen["requests"]
    assert API_KEY in token_calls[0]["body"]
    api_calls = [r for r in seen["requests"] if r not in token_calls]
    assert [(r["method"], r["target"]) for r in api_calls] == calls
    for r in api_calls:
        assert r["authorization"] == [bearer], r
        assert r["x_imp_token_header"] == [], r
    assert all(sdk_key not in r["body"] and sdk_key not in r["target"] for r in seen["requests"])
