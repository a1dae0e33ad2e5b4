"""GET /schemas/<ce_dataschema>: a partner fetches the schema a message header names."""

from __future__ import annotations

import httpx
from eventkit.contracts import SchemaRegistry, dataschema_urn
from eventkit.http import create_app
from eventkit.settings import KernelSettings

HOTLINE = "jingmin.intake.HotlineCaseStatusChanged.v1"
DAILY = "jingmin.metrics.DailyFigures.v1"


def _client() -> httpx.AsyncClient:
    app = create_app("toy", KernelSettings(), title="toy", version="1")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_the_dataschema_header_resolves_to_its_schema() -> None:
    registry = SchemaRegistry.load()
    async with _client() as client:
        for type_ in (HOTLINE, DAILY):
            urn = dataschema_urn(type_)
            for path in (f"/schemas/{urn}", f"/schemas/{type_}.json"):
                r = await client.get(path)
                assert r.status_code == 200, path
                assert r.headers["content-type"] == "application/schema+json"
                schema = r.json()
                assert schema == registry.schema(type_)
                assert schema["$id"] == urn


async def test_an_unknown_schema_is_not_found() -> None:
    async with _client() as client:
        for path in ("/schemas/urn:jingmin:schema:nope.v1", "/schemas/..%2f..%2fetc%2fpasswd"):
            r = await client.get(path)
            assert r.status_code == 404
