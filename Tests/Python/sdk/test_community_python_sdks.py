"""Three more Python iamport clients from PyPI, used unchanged against the proxy.
Each fetches a token itself (answered by the proxy, never forwarded), then
finds and cancels a payment; the fake API must see only the proxy's token."""
import asyncio

import pytest

from conftest import assert_only_the_proxy_reached_the_api, start_proxy

SDK_KEY = "sdk-own-key-7d2a"


def test_iamporter(fake):
    from iamporter import Iamporter

    proxy = start_proxy(fake)
    try:
        # Form-encoded getToken at construction; the token is never refreshed.
        client = Iamporter(imp_key=SDK_KEY, imp_secret="unused", imp_url=f"http://127.0.0.1:{proxy.port}/")
        assert client.find_payment(imp_uid="imp_iamporter_1")["imp_uid"] == "imp_iamporter_1"
        cancelled = client.cancel_payment(imp_uid="imp_iamporter_1", reason="customer asked")
        assert cancelled["status"] == "cancelled"
        assert cancelled["imp_uid"] == "imp_iamporter_1"
        assert_only_the_proxy_reached_the_api(
            fake, SDK_KEY, [("GET", "/payments/imp_iamporter_1"), ("POST", "/payments/cancel")])
    finally:
        assert proxy.stop() == 0


def test_async_iamport(fake):
    from async_iamport import AsyncIamport

    proxy = start_proxy(fake)

    async def find_and_cancel():
        # Its aiohttp session is made in the constructor: build it inside the running loop.
        client = AsyncIamport(imp_key=SDK_KEY, imp_secret="unused", imp_url=f"http://127.0.0.1:{proxy.port}")
        try:
            payment = await client.find(imp_uid="imp_async_1")
            cancelled = await client.cancel("customer asked", imp_uid="imp_async_1")
            return payment, cancelled
        finally:
            await client.close_session()

    try:
        payment, cancelled = asyncio.run(find_and_cancel())
        assert payment["imp_uid"] == "imp_async_1"
        assert cancelled["status"] == "cancelled"
        assert cancelled["imp_uid"] == "imp_async_1"
        assert_only_the_proxy_reached_the_api(
            fake, SDK_KEY, [("GET", "/payments/imp_async_1"), ("POST", "/payments/cancel")])
    finally:
        assert proxy.stop() == 0


# django-iamport joins a module constant ending in `/` with paths starting
# with `/`: with its own form of the URL it asks for `//users/getToken`.
@pytest.mark.parametrize("endpoint_suffix", [
    "",
    "/",
])
def test_django_iamport(fake, endpoint_suffix):
    from django.conf import settings
    if not settings.configured:
        settings.configure(DEBUG=False)
    settings.PAYMENT_REST_KEY = SDK_KEY
    settings.PAYMENT_REST_SECRET = "unused"
    from payment import iamport_rest

    proxy = start_proxy(fake)
    original = iamport_rest.IAMPORT_API_ENDPOINT
    iamport_rest.IAMPORT_API_ENDPOINT = f"http://127.0.0.1:{proxy.port}{endpoint_suffix}"
    try:
        client = iamport_rest.IamportRest()
        assert client.auth()
        assert client.payment("imp_django_1")["imp_uid"] == "imp_django_1"
        assert client.cancel("imp_django_1", "order_django_1", "customer asked") is True
        # The API receives the path as the SDK sent it (doubled slash and all:
        # the API, and the fake, read repeated slashes as one).
        prefix = "/" + endpoint_suffix
        assert_only_the_proxy_reached_the_api(
            fake, SDK_KEY, [("GET", prefix + "payments/imp_django_1"), ("POST", prefix + "payments/cancel")])
    finally:
        iamport_rest.IAMPORT_API_ENDPOINT = original
        assert proxy.stop() == 0
