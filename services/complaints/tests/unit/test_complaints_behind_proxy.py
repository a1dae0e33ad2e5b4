"""The public complaint form behind the ingress: the per-address limit counts each citizen
(X-Forwarded-For from a trusted proxy), not the proxy, which would be the whole city.

No database is needed: the limit is taken before the form is read, and a post that is not
a form is refused (415) without touching the store, yet still counts against its address.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from eventkit.settings import KernelSettings
from fastapi import FastAPI
from jingmin_complaints.entrypoints.app import create_app
from jingmin_complaints.entrypoints.ratelimit import SUBMIT, RateLimiter

INGRESS = "10.42.3.17"  # an ingress controller pod, inside FORWARDED_ALLOW_IPS
STRANGER = "203.0.113.50"  # a client that reaches the API without the ingress


def _app(trusted: str) -> FastAPI:
    settings = KernelSettings(
        master_key=base64.b64encode(bytes(32)).decode(),
        kafka_bootstrap_servers="127.0.0.1:9",
        forwarded_allow_ips=trusted,
    )
    app: FastAPI = create_app(settings, dsn="postgresql://unused@127.0.0.1:9/none")
    app.state.limiter = RateLimiter(clock=lambda: 1000.0)  # no refill during the test
    return app


async def _post(app: FastAPI, peer: str, forwarded_for: str | None) -> int:
    transport = httpx.ASGITransport(app=app, client=(peer, 50123))
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://tousu.test") as c:
        r = await c.post("/complain", json={}, headers=headers)
    assert r.status_code in (415, 429), r.text
    return r.status_code


@pytest.mark.parametrize("trusted", ["10.42.0.0/16", INGRESS, f"127.0.0.1,{INGRESS}"])
async def test_the_limit_is_per_citizen_behind_a_trusted_proxy(trusted: str) -> None:
    app = _app(trusted)
    citizens = [f"198.51.100.{i}" for i in range(1, 8)]
    # More citizens than one address's budget all file through the same ingress.
    for citizen in citizens:
        assert await _post(app, INGRESS, citizen) == 415
    # One citizen's own budget runs out all the same.
    for _ in range(SUBMIT.capacity - 1):
        assert await _post(app, INGRESS, citizens[0]) == 415
    assert await _post(app, INGRESS, citizens[0]) == 429
    assert await _post(app, INGRESS, citizens[1]) == 415
    # A chain (a CDN in front of the ingress, both trusted or not): the address the
    # trusted proxy saw is the one counted, the rightmost untrusted one.
    assert await _post(app, INGRESS, f"192.0.2.9, {citizens[0]}") == 429


async def test_a_forged_header_from_an_untrusted_peer_is_ignored() -> None:
    app = _app("10.42.0.0/16")
    # A client that reaches the API directly cannot pick a fresh address for every post.
    for i in range(SUBMIT.capacity):
        assert await _post(app, STRANGER, f"198.51.100.{i}") == 415
    assert await _post(app, STRANGER, "198.51.100.200") == 429


async def test_without_a_trusted_proxy_the_proxy_is_one_address() -> None:
    """What the platform did before FORWARDED_ALLOW_IPS: the proxy is the only 'citizen'."""
    app = _app("127.0.0.1")
    for i in range(SUBMIT.capacity):
        assert await _post(app, INGRESS, f"198.51.100.{i}") == 415
    assert await _post(app, INGRESS, "198.51.100.99") == 429


def test_the_default_trusts_only_the_loopback() -> None:
    assert KernelSettings.model_fields["forwarded_allow_ips"].default == "127.0.0.1"
