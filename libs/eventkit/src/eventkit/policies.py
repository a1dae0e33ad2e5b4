"""Per-bureau policy documents (table `bureau_policies`), read on every decision, cached briefly."""

from __future__ import annotations

import json
import time
from typing import Any, Generic, Protocol, Self, TypeVar

import asyncpg


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

    async def read(self, conn: asyncpg.Connection, bureau: str) -> P:
        """The stored policy, bypassing the cache (for showing and editing it)."""
        raw = await conn.fetchval(
            "SELECT policy::text FROM bureau_policies WHERE bureau = $1", bureau
        )
        return self.policy_type.from_dict(json.loads(raw)) if raw else self.policy_type()

    async def get(self, conn: asyncpg.Connection, bureau: str) -> P:
        cached = self._cache.get(bureau)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        policy = await self.read(conn, bureau)
        self._cache[bureau] = (time.monotonic(), policy)
        return policy

    async def save(self, conn: asyncpg.Connection, bureau: str, policy: P, by: str) -> None:
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
