"""PortOne's own Python server SDK (portone-server-sdk), unchanged, against the
fake V2 API directly: the fake is faithful enough for the SDK (its requests,
answers and error types), so the proxy's V2 tests can rely on it."""
import pytest
from portone_server_sdk import PaymentClient
from portone_server_sdk.errors import PaymentAlreadyCancelledError, PaymentNotFoundError, UnauthorizedError
from portone_server_sdk.payment import CancelledPayment, PaidPayment, SucceededPaymentCancellation

from conftest import V2_SECRET, fake_v2_requests, fake_v2_stats


def client(fake, secret=V2_SECRET):
    return PaymentClient(secret=secret, base_url=f"http://127.0.0.1:{fake.port}")


def test_get_and_cancel_a_payment(fake_v2):
    payments = client(fake_v2)
    payment = payments.get_payment(payment_id="pay sdk/1")
    assert isinstance(payment, PaidPayment)
    assert payment.id == "pay sdk/1"
    assert payment.amount.total == 1004

    cancelled = payments.cancel_payment(payment_id="pay sdk/1", reason="고객 요청")
    assert isinstance(cancelled.cancellation, SucceededPaymentCancellation)
    assert cancelled.cancellation.reason == "고객 요청"
    assert isinstance(payments.get_payment(payment_id="pay sdk/1"), CancelledPayment)
    # The API's own errors reach the SDK as its usual exceptions.
    with pytest.raises(PaymentAlreadyCancelledError):
        payments.cancel_payment(payment_id="pay sdk/1", reason="again")
    with pytest.raises(PaymentNotFoundError):
        payments.get_payment(payment_id="missing-1")

    seen = fake_v2_requests(fake_v2)
    assert [(r["method"], r["target"]) for r in seen] == [
        ("GET", "/payments/pay%20sdk%2F1"), ("POST", "/payments/pay%20sdk%2F1/cancel"),
        ("GET", "/payments/pay%20sdk%2F1"), ("POST", "/payments/pay%20sdk%2F1/cancel"),
        ("GET", "/payments/missing-1")]
    assert all(r["authorization"] == ["PortOne " + V2_SECRET] for r in seen)
    assert fake_v2_stats(fake_v2)["unauthorized_answers"] == 0


def test_a_wrong_secret_raises_the_sdks_unauthorized_error(fake_v2):
    payments = client(fake_v2, secret="not-the-secret")
    with pytest.raises(UnauthorizedError):
        payments.get_payment(payment_id="pay-sdk-2")
    with pytest.raises(UnauthorizedError):
        payments.cancel_payment(payment_id="pay-sdk-2", reason="r")
    stats = fake_v2_stats(fake_v2)
    assert stats["unauthorized_answers"] == 2
    assert stats["executions"] == 0


def test_the_sdks_login_gets_tokens(fake_v2):
    from portone_server_sdk import AuthClient

    tokens = AuthClient(secret=V2_SECRET, base_url=f"http://127.0.0.1:{fake_v2.port}").login_via_api_secret(
        api_secret=V2_SECRET)
    assert tokens.access_token and tokens.refresh_token
    with pytest.raises(UnauthorizedError):
        AuthClient(secret="x", base_url=f"http://127.0.0.1:{fake_v2.port}").login_via_api_secret(api_secret="wrong")
