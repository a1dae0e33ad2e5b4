"""The shared FastAPI defaults answer every failure with problem+json and measure by route."""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from eventkit.http import create_app
from eventkit.problems import PROBLEM_JSON, Problem, conflict
from eventkit.settings import KernelSettings
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

KIB = 1024


class Channel(enum.StrEnum):
    PHONE = "phone"
    COUNTER = "counter"


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    channel: Channel


def toy_app(checks: dict[str, bool] | None = None) -> FastAPI:
    async def readiness() -> dict[str, bool]:
        return checks or {}

    app = create_app(
        "toy", KernelSettings(log_json=True), title="Toy", version="0.0.1", readiness=readiness
    )

    @app.post("/items", status_code=201)
    async def create_item(item: ItemCreate) -> dict[str, str]:
        return {"name": item.name, "channel": item.channel}

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        if item_id == 9:
            raise conflict("条目已被修改", current_version=3)
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret connection string postgres://u:p@db")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=toy_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def test_valid_request_succeeds(client: httpx.AsyncClient) -> None:
    r = await client.post("/items", json={"name": "张三", "channel": "phone"})
    assert r.status_code == 201
    assert "张三".encode() in r.content


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/items", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    body = assert_problem(r, 400)
    assert body["title"] == "Malformed JSON"


async def test_unknown_field_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/items", json={"name": "x", "channel": "phone", "colour": "red"})
    body = assert_problem(r, 422)
    assert body["errors"] == [
        {"loc": ["body", "colour"], "msg": "Unknown field 'colour'", "type": "extra_forbidden"}
    ]


async def test_bad_enum_is_422_listing_allowed_values(client: httpx.AsyncClient) -> None:
    r = await client.post("/items", json={"name": "x", "channel": "fax"})
    body = assert_problem(r, 422)
    errors = body["errors"]
    assert isinstance(errors, list) and len(errors) == 1
    assert errors[0]["loc"] == ["body", "channel"]
    assert errors[0]["type"] == "enum"
    assert "'phone'" in errors[0]["msg"] and "'counter'" in errors[0]["msg"]
    assert "fax" not in r.text  # the rejected input is not echoed back


async def test_body_over_limit_with_content_length_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/items", content=b"x" * (70 * KIB), headers={"content-type": "application/json"}
    )
    body = assert_problem(r, 413)
    assert body["max_bytes"] == 64 * KIB


async def test_chunked_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(70):
            yield b"x" * KIB

    r = await client.post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_problem(r, 413)


async def test_chunked_body_under_limit_is_read_whole(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        yield b"y" * (60 * KIB)
        yield b'", "channel": "counter"}'

    r = await client.post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 201


async def test_raised_problem_passes_through_in_readable_utf8(client: httpx.AsyncClient) -> None:
    r = await client.get("/items/9")
    body = assert_problem(r, 409)
    assert body["detail"] == "条目已被修改"
    assert body["current_version"] == 3
    assert body["instance"] == "/items/9"
    assert "条目已被修改".encode() in r.content


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404)


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    r = await client.delete("/items")
    assert_problem(r, 405)
    assert r.headers["allow"] == "POST"


async def test_unhandled_error_is_500_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.get("/boom")
    body = assert_problem(r, 500)
    assert "postgres" not in r.text and "RuntimeError" not in r.text
    assert "trace_id" in body
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert logged and "secret connection string" in str(logged[0].exc_info[1])


async def test_metrics_use_the_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/items/42")
    text = (await client.get("/metrics")).text
    assert "jingmin_http_request_duration_seconds_bucket" in text
    assert (
        'jingmin_http_request_duration_seconds_count{method="GET",route="/items/{item_id}",'
        'service="toy",status="200"}'
    ) in text
    assert "/items/42" not in text


async def test_rejected_before_routing_still_gets_its_route(client: httpx.AsyncClient) -> None:
    await client.post("/items", content=b"x" * (70 * KIB))
    await client.get("/no/such/thing")
    text = (await client.get("/metrics")).text
    assert 'route="/items",service="toy",status="413"' in text
    assert 'route="unmatched",service="toy",status="404"' in text
    assert "/no/such/thing" not in text


async def test_health_and_readiness() -> None:
    transport = httpx.ASGITransport(app=toy_app({"database": True, "kafka": False}))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        body = assert_problem(await c.get("/readyz"), 503)
        assert body["failing"] == ["kafka"]
        openapi = (await c.get("/openapi.json")).json()
    assert not {"/metrics", "/healthz", "/readyz"} & set(openapi["paths"])
    assert PROBLEM_JSON in openapi["paths"]["/items"]["post"]["responses"]["422"]["content"]


async def test_readiness_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_metrics_content_type(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=")


def test_problem_is_an_exception_callers_can_raise() -> None:
    assert isinstance(conflict("x"), Problem)
