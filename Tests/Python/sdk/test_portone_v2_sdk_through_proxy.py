"""PortOne's own Python server SDK (portone-server-sdk), unchanged, pointed at
the proxy with a V2 account's client token as its API secret: the proxy swaps
in the real secret, adds an Idempotency-Key to payment calls, answers its own
errors in V2's shape, and never forwards the SDK's credential calls."""
import os

import pytest
import requests
from portone_server_sdk import AuthClient, PaymentClient
from portone_server_sdk.errors import PaymentAlreadyCancelledError, PaymentNotFoundError, UnauthorizedError
from portone_server_sdk.payment import CancelledPayment, PaidPayment, SucceededPaymentCancellation

from conftest import API_KEY, API_SECRET, BIN, V2_SECRET, Running, fake_v2_requests, fake_v2_stats

V2_CLIENT_TOKEN = "sdk-v2-client-token-c3"
V1_CLIENT_TOKEN = "sdk-v1-client-token-a9"


@pytest.fixture
def proxy(fake, fake_v2, tmp_path):
    """Two accounts on the shared listener (a V1 and a V2, told apart by their
    client tokens) and the V2 account again on a listener of its own."""
    for name, value in [("v1-secret", API_SECRET), ("v1-client", V1_CLIENT_TOKEN),
                        ("v2-secret", V2_SECRET), ("v2-client", V2_CLIENT_TOKEN)]:
        (tmp_path / name).write_text(value + "\n")
    config = tmp_path / "proxy.yaml"
    config.write_text(f"""
accounts:
  - name: shop-v1
    api: v1
    api_key: {API_KEY}
    api_secret_file: {tmp_path}/v1-secret
    client_token_file: {tmp_path}/v1-client
    upstream: http://127.0.0.1:{fake.port}
  - name: shop-v2
    api: v2
    api_secret_file: {tmp_path}/v2-secret
    client_token_file: {tmp_path}/v2-client
    upstream: http://127.0.0.1:{fake_v2.port}
  - name: shop-v2-own
    api: v2
    api_secret_file: {tmp_path}/v2-secret
    client_token_file: {tmp_path}/v2-client
    upstream: http://127.0.0.1:{fake_v2.port}
    listen: 127.0.0.1:0
""")
    running = Running([os.path.join(BIN, "iamport-proxy"), "--config", str(config), "--listen", "127.0.0.1:0"])
    yield running
    assert running.stop() == 0
    output = running.output()
    assert V2_SECRET not in output and V2_CLIENT_TOKEN not in output and API_SECRET not in output
    os.unlink(running.log_path)


def own_port(running):
    for line in running.output().splitlines():
        if "for account shop-v2-own" in line:
            return int(line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
    raise AssertionError("no own listener: " + running.output())


def test_the_sdk_works_unchanged_through_the_proxy(proxy, fake_v2):
    # (An id with "/" is sent as %2F, which SPEC refuses in any path: see
    # test_an_id_with_a_slash_is_refused_in_v2s_shape.)
    payments = PaymentClient(secret=V2_CLIENT_TOKEN, base_url=f"http://127.0.0.1:{proxy.port}")
    payment = payments.get_payment(payment_id="pay proxy 1")
    assert isinstance(payment, PaidPayment)
    assert payment.id == "pay proxy 1"
    cancelled = payments.cancel_payment(payment_id="pay proxy 1", reason="고객 요청")
    assert isinstance(cancelled.cancellation, SucceededPaymentCancellation)
    assert isinstance(payments.get_payment(payment_id="pay proxy 1"), CancelledPayment)
    with pytest.raises(PaymentAlreadyCancelledError):
        payments.cancel_payment(payment_id="pay proxy 1", reason="again")
    with pytest.raises(PaymentNotFoundError):
        payments.get_payment(payment_id="missing-2")

    seen = fake_v2_requests(fake_v2)
    assert [(r["method"], r["target"]) for r in seen] == [
        ("GET", "/payments/pay%20proxy%201"), ("POST", "/payments/pay%20proxy%201/cancel"),
        ("GET", "/payments/pay%20proxy%201"), ("POST", "/payments/pay%20proxy%201/cancel"),
        ("GET", "/payments/missing-2")]
    # Only the account's real secret reached the API, never the client token.
    assert all(r["authorization"] == ["PortOne " + V2_SECRET] for r in seen)
    # Each payment call got its own key from the proxy; reads got none.
    keys = [r["idempotency_key"] for r in seen if r["method"] == "POST"]
    assert all(len(k) == 1 and len(k[0]) == 34 and k[0].startswith('"') for k in keys)
    assert keys[0] != keys[1]
    assert all(r["idempotency_key"] == [] for r in seen if r["method"] == "GET")


def test_a_wrong_client_token_raises_the_sdks_unauthorized_error(proxy, fake_v2):
    # On the account's own listener the proxy answers in V2's shape.
    payments = PaymentClient(secret="not-the-client-token", base_url=f"http://127.0.0.1:{own_port(proxy)}")
    with pytest.raises(UnauthorizedError):
        payments.get_payment(payment_id="pay-x")
    with pytest.raises(UnauthorizedError):
        payments.cancel_payment(payment_id="pay-x", reason="r")
    assert fake_v2_stats(fake_v2)["arrivals"] == 0


def test_the_sdks_credential_calls_are_never_forwarded(proxy, fake_v2):
    auth = AuthClient(secret=V2_CLIENT_TOKEN, base_url=f"http://127.0.0.1:{own_port(proxy)}")
    with pytest.raises(Exception) as raised:
        auth.login_via_api_secret(api_secret=V2_CLIENT_TOKEN)
    assert "FORBIDDEN" in repr(raised.value) or "403" in repr(raised.value) or "iamport-proxy" in repr(raised.value)
    answer = requests.post(f"http://127.0.0.1:{proxy.port}/token/refresh", json={"refreshToken": "x"},
                           headers={"Authorization": "PortOne " + V2_CLIENT_TOKEN})
    assert answer.status_code == 403
    assert answer.json()["type"] == "FORBIDDEN"
    assert answer.headers["X-Iamport-Proxy-Error"] == "forbidden"
    assert fake_v2_stats(fake_v2)["arrivals"] == 0


def test_the_v1_account_beside_it_serves_v1_sdks(proxy, fake):
    token = requests.post(f"http://127.0.0.1:{proxy.port}/users/getToken",
                          json={"imp_key": "anything", "imp_secret": V1_CLIENT_TOKEN}).json()["response"]["access_token"]
    assert token == V1_CLIENT_TOKEN
    answer = requests.get(f"http://127.0.0.1:{proxy.port}/payments/imp_1", headers={"Authorization": token})
    assert answer.status_code == 200
    assert answer.json()["code"] == 0


def test_an_id_with_a_slash_is_refused_in_v2s_shape(proxy, fake_v2):
    payments = PaymentClient(secret=V2_CLIENT_TOKEN, base_url=f"http://127.0.0.1:{proxy.port}")
    with pytest.raises(Exception) as raised:
        payments.get_payment(payment_id="pay/1")
    assert "INVALID_REQUEST" in repr(raised.value) or "encoded /" in repr(raised.value)
    answer = requests.get(f"http://127.0.0.1:{proxy.port}/payments/pay%2F1",
                          headers={"Authorization": "PortOne " + V2_CLIENT_TOKEN})
    assert answer.status_code == 400
    assert answer.json()["type"] == "INVALID_REQUEST"
    assert fake_v2_stats(fake_v2)["arrivals"] == 0
