"""Per-bureau policy documents (table `bureau_policies`), read on every decision, cached briefly."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Annotated, Any, Generic, Protocol, Self, TypeVar

import asyncpg
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from eventkit.auth import CurrentPrincipal, authorize
from eventkit.problems import unprocessable


class Policy(Protocol):
    """A dataclass-like policy: defaults from the no-argument constructor."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Self: ...


P = TypeVar("P", bound=Policy)


class BureauPolicies(Generic[P]):
    """A bureau's policy, or the defaults where it set none.

    Cached for `ttl` seconds per process: a change made elsewhere is seen within that time,
    and facts already written keep the policy they were decided with.
    """

    def __init__(self, policy_type: type[P], ttl: float = 10.0) -> None:
        self.policy_type = policy_type
        self.ttl = ttl
        self._cache: dict[str, tuple[float, P]] = {}
        self._memory: dict[str, str] = {}

    async def read(self, conn: asyncpg.Connection | None, bureau: str) -> P:
        """The stored policy, bypassing the cache (for showing and editing it).

        Without a connection (the in-memory unit of work) policies live in this object.
        """
        if conn is None:
            raw = self._memory.get(bureau)
        else:
            raw = await conn.fetchval(
                "SELECT policy::text FROM bureau_policies WHERE bureau = $1", bureau
            )
        return self.policy_type.from_dict(json.loads(raw)) if raw else self.policy_type()

    async def get(self, conn: asyncpg.Connection | None, bureau: str) -> P:
        cached = self._cache.get(bureau)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        policy = await self.read(conn, bureau)
        self._cache[bureau] = (time.monotonic(), policy)
        return policy

    async def save(self, conn: asyncpg.Connection | None, bureau: str, policy: P, by: str) -> None:
        if conn is None:
            self._memory[bureau] = json.dumps(policy.to_dict())
            return
        await conn.execute(
            """INSERT INTO bureau_policies (bureau, policy, updated_by) VALUES ($1, $2::jsonb, $3)
               ON CONFLICT (bureau) DO UPDATE SET policy = excluded.policy,
                   updated_by = excluded.updated_by, updated_at = clock_timestamp()""",
            bureau,
            json.dumps(policy.to_dict()),
            by,
        )

    def forget(self, bureau: str) -> None:
        """Drop the cached copy (this process just changed it)."""
        self._cache.pop(bureau, None)


def policy_routes(
    router: APIRouter,
    body_type: type[BaseModel],
    *,
    what: str,
    read_roles: Sequence[str],
    write_roles: Sequence[str] = ("commander", "admin"),
) -> None:
    """Add `GET/PUT /policies/{bureau}` to a service router.

    The service's command handler (`app.state.commands`) must expose `.policies`, a
    `BureauPolicies`; PUT merges the fields given over the current policy.
    """

    def policies_of(request: Request) -> BureauPolicies[Any]:
        found: BureauPolicies[Any] = request.app.state.commands.policies
        return found

    async def get_policy(
        bureau: Annotated[str, Path(pattern=r"^\d{6}$")],
        request: Request,
        principal: CurrentPrincipal,
    ) -> dict[str, Any]:
        authorize(principal, bureau, read_roles)
        async with request.app.state.pool.acquire() as conn:
            stored: Policy = await policies_of(request).read(conn, bureau)
        return stored.to_dict()

    async def put_policy(
        bureau: Annotated[str, Path(pattern=r"^\d{6}$")],
        body: Any,
        request: Request,
        principal: CurrentPrincipal,
    ) -> dict[str, Any]:
        authorize(principal, bureau, write_roles)
        policies = policies_of(request)
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            current = (await policies.read(conn, bureau)).to_dict()
            current.update(body.model_dump(exclude_none=True, mode="json"))
            try:
                policy: Policy = policies.policy_type.from_dict(current)
            except (ValueError, TypeError) as exc:
                raise unprocessable(str(exc)) from exc
            await policies.save(conn, bureau, policy, principal.subject)
        policies.forget(bureau)
        return policy.to_dict()

    # The body type varies per service; FastAPI reads it from the annotation.
    put_policy.__annotations__["body"] = body_type
    router.add_api_route(
        "/policies/{bureau}",
        get_policy,
        methods=["GET"],
        summary=f"The bureau's {what} policy",
        description=f"The bureau's {what} policy (defaults where it set none).",
    )
    router.add_api_route(
        "/policies/{bureau}",
        put_policy,
        methods=["PUT"],
        summary=f"Change the bureau's {what} policy",
        description=f"Change the bureau's {what} policy; fields left out keep their value.",
    )
