"""Per-bureau callback policies stored in Postgres; bureaus without one get the defaults."""

from __future__ import annotations

import json

import asyncpg

from jingmin_visits.domain.policy import CallbackPolicy


async def policy_for(conn: asyncpg.Connection, bureau: str) -> CallbackPolicy:
    raw = await conn.fetchval("SELECT policy::text FROM bureau_policies WHERE bureau = $1", bureau)
    return CallbackPolicy.from_dict(json.loads(raw)) if raw else CallbackPolicy()


async def save_policy(
    conn: asyncpg.Connection, bureau: str, policy: CallbackPolicy, by: str
) -> None:
    await conn.execute(
        """INSERT INTO bureau_policies (bureau, policy, updated_by) VALUES ($1, $2::jsonb, $3)
           ON CONFLICT (bureau) DO UPDATE SET policy = excluded.policy,
               updated_by = excluded.updated_by, updated_at = clock_timestamp()""",
        bureau,
        json.dumps(policy.to_dict()),
        by,
    )
