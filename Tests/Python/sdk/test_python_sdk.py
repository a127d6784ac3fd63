"""The official Python SDK, iamport-rest-client, used unchanged against the proxy."""
import os
import subprocess

import pytest
import requests
from iamport import Iamport

from conftest import API_KEY, API_SECRET, fake_stats, start_proxy

CLIENT_TOKEN = "client-token-for-app-1c9d0e"


def test_find_and_cancel_without_a_client_token(fake):
    proxy = start_proxy(fake)
    try:
        # The app holds no credentials: anything will do, the proxy answers getToken itself.
        client = Iamport(imp_key="unused", imp_secret="unused", imp_url=f"http://127.0.0.1:{proxy.port}/")
        payment = client.find(imp_uid="imp_sdk_1")
        assert payment["imp_uid"] == "imp_sdk_1"
        assert payment["status"] == "paid"
        by_merchant = client.find(merchant_uid="order_42")
        assert by_merchant["merchant_uid"] == "order_42"
        cancelled = client.cancel("customer asked", imp_uid="imp_sdk_1")
        assert cancelled["status"] == "cancelled"
        assert cancelled["imp_uid"] == "imp_sdk_1"
        # The SDK asked for a token before each call; only the proxy's own fetch reached the API.
        assert fake_stats(fake)["get_token_calls"] == 1
    finally:
        assert proxy.stop() == 0
    log = proxy.output()
    assert API_SECRET not in log
    assert "unused" not in log


def test_with_a_client_token(fake):
    proxy = start_proxy(fake, IAMPORT_PROXY_CLIENT_TOKEN=CLIENT_TOKEN)
    try:
        client = Iamport(imp_key="app", imp_secret=CLIENT_TOKEN, imp_url=f"http://127.0.0.1:{proxy.port}/")
        assert client.find(imp_uid="imp_sdk_2")["imp_uid"] == "imp_sdk_2"
        assert client.cancel("duplicate", imp_uid="imp_sdk_2")["status"] == "cancelled"
    finally:
        assert proxy.stop() == 0
    assert CLIENT_TOKEN not in proxy.output()


def test_a_wrong_client_token_fails_cleanly(fake):
    proxy = start_proxy(fake, IAMPORT_PROXY_CLIENT_TOKEN=CLIENT_TOKEN)
    try:
        client = Iamport(imp_key="app", imp_secret="not-the-token", imp_url=f"http://127.0.0.1:{proxy.port}/")
        with pytest.raises(Iamport.HttpError) as raised:
            client.find(imp_uid="imp_sdk_3")
        assert raised.value.code == 401
        # Nothing reached the API but the proxy's own token fetch.
        assert fake_stats(fake)["api_calls"] == 0
    finally:
        assert proxy.stop() == 0


@pytest.mark.parametrize("header", [
    ("Authorization", f"Bearer {CLIENT_TOKEN}"),
    ("Authorization", CLIENT_TOKEN),
    ("X-ImpTokenHeader", CLIENT_TOKEN),
])
def test_each_header_form_of_the_client_token(fake, header):
    proxy = start_proxy(fake, IAMPORT_PROXY_CLIENT_TOKEN=CLIENT_TOKEN)
    try:
        url = f"http://127.0.0.1:{proxy.port}/payments/imp_h"
        ok = requests.get(url, headers={header[0]: header[1]})
        assert ok.status_code == 200, ok.text
        assert ok.json()["response"]["imp_uid"] == "imp_h"
        missing = requests.get(url)
        assert missing.status_code == 401
        assert missing.headers["X-Iamport-Proxy-Error"] == "client_unauthorized"
        assert missing.json()["code"] == -1
        wrong = requests.get(url, headers={header[0]: header[1].replace(CLIENT_TOKEN, CLIENT_TOKEN[:-1] + "x")})
        assert wrong.status_code == 401
    finally:
        assert proxy.stop() == 0


def test_curl_through_the_proxy(fake):
    proxy = start_proxy(fake, IAMPORT_PROXY_ALLOW="GET /payments/*")
    try:
        out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", f"http://127.0.0.1:{proxy.port}/payments/imp_curl"],
                             capture_output=True, text=True, check=True).stdout
        body, status = out.rsplit("\n", 1)
        assert status == "200"
        assert '"imp_uid":"imp_curl"' in body
        refused = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                  "-H", "Content-Type: application/json", "-d", '{"imp_uid":"imp_curl"}',
                                  f"http://127.0.0.1:{proxy.port}/payments/cancel"],
                                 capture_output=True, text=True, check=True).stdout
        assert refused == "403"
        assert fake_stats(fake)["api_calls"] == 1
    finally:
        assert proxy.stop() == 0
