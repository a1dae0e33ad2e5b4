"""The message schemas, fetchable over HTTP: `GET /schemas/<ce_dataschema>`.

A message's `ce_dataschema` is `urn:jingmin:schema:<ce_type>`, the `$id` of its JSON
Schema. Every service API answers `GET /schemas/urn:jingmin:schema:<ce_type>` (or
`/schemas/<ce_type>.json`) with that schema, so a partner resolves the header by appending
it to the bureau's public schema address (the Ingress routes `/schemas` there;
docs/partners.md). The schemas are the contracts/ folder the consumers validate with.
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from eventkit.contracts import DATASCHEMA_PREFIX, SchemaRegistry
from eventkit.problems import not_found

SCHEMA_MEDIA_TYPE = "application/schema+json"


@cache
def _registry() -> SchemaRegistry:
    return SchemaRegistry.load()


def schema_router() -> APIRouter:
    router = APIRouter()

    @router.get("/schemas/{name}", include_in_schema=False)
    async def published_schema(name: str) -> JSONResponse:
        type_ = name.removeprefix(DATASCHEMA_PREFIX).removesuffix(".json")
        registry = _registry()
        if type_ not in registry:
            raise not_found(f"no published schema {name}")
        return JSONResponse(
            registry.schema(type_),
            media_type=SCHEMA_MEDIA_TYPE,
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return router
