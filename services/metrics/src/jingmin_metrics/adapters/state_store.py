"""The processors' state in the metrics database: items, source positions, owners, figures.

Storing offsets outside Kafka: a batch's item changes, figure records and the next offset of
each source partition it read commit in one transaction. The position update is a
compare-and-set on the offset the batch started from, under the partition's owner row
(whose generation a newer claim raised), so a processor that lost its partition cannot
write after its new owner: its transaction is refused whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg

ITEMS = "items"
REGROUP = "regroup"


@dataclass(frozen=True)
class Position:
    """Where a source partition is read up to: the next offset, and a digest of the record
    just before it (None at offset 0)."""

    offset: int = 0
    digest: int | None = None


@dataclass
class PartitionWrite:
    """What one batch changes in one partition."""

    role: str
    partition: int
    generation: int
    # topic -> (the position the batch started from, the position after it)
    positions: dict[str, tuple[Position, Position]]
    items: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[tuple[str, bytes | None]] = field(default_factory=list)


class Refused(Exception):
    """The compare-and-set lost: another processor claimed these partitions since."""

    def __init__(self, partitions: set[tuple[str, int]]) -> None:
        super().__init__(f"partitions owned by another processor now: {sorted(partitions)}")
        self.partitions = partitions


class StateStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, role: str, partition: int, topics: Iterable[str]) -> int:
        """Take `partition` over for `role`: a new generation (older writers are refused)."""
        async with self.pool.acquire() as conn, conn.transaction():
            generation = await conn.fetchval(
                """INSERT INTO metrics_owners (role, partition, generation) VALUES ($1, $2, 1)
                   ON CONFLICT (role, partition)
                   DO UPDATE SET generation = metrics_owners.generation + 1
                   RETURNING generation""",
                role,
                partition,
            )
            names = sorted(topics)
            await conn.execute(
                """INSERT INTO metrics_positions (topic, partition, next_offset)
                   SELECT unnest($1::text[]), $2, 0 ON CONFLICT DO NOTHING""",
                names,
                partition,
            )
        return int(generation)

    async def positions(self, partition: int, topics: Iterable[str]) -> dict[str, Position]:
        rows = await self.pool.fetch(
            """SELECT topic, next_offset, last_digest FROM metrics_positions
               WHERE partition = $1 AND topic = ANY($2::text[])""",
            partition,
            sorted(topics),
        )
        found = {r["topic"]: Position(r["next_offset"], r["last_digest"]) for r in rows}
        return {t: found.get(t, Position()) for t in topics}

    async def items(self, partition: int) -> list[tuple[bytes, bytes]]:
        rows = await self.pool.fetch(
            "SELECT key, state FROM metrics_items WHERE partition = $1", partition
        )
        return [(bytes(r["key"]), bytes(r["state"])) for r in rows]

    async def generations(self, role: str) -> dict[int, int]:
        rows = await self.pool.fetch(
            "SELECT partition, generation FROM metrics_owners WHERE role = $1", role
        )
        return {r["partition"]: r["generation"] for r in rows}

    async def restart(self, role: str, topics: Iterable[str]) -> None:
        """Make `role` read `topics` again from offset 0: its owners' generations move on, so
        each claims its partitions again (refused meanwhile) and reads the reset positions."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE metrics_owners SET generation = generation + 1 WHERE role = $1", role
            )
            await conn.execute(
                """UPDATE metrics_positions SET next_offset = 0, last_digest = NULL
                   WHERE topic = ANY($1::text[])""",
                sorted(topics),
            )

    async def commit(self, writes: Sequence[PartitionWrite]) -> None:
        """Apply `writes` in one transaction, or raise `Refused` and write nothing."""
        if not writes:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            # Lock the owner rows first: a claim waits for this commit, and one that came
            # first has raised the generation, so the check below fails.
            owned = await conn.fetch(
                """SELECT o.role, o.partition FROM metrics_owners o
                   JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS u(role, partition, gen)
                     ON o.role = u.role AND o.partition = u.partition AND o.generation = u.gen
                   ORDER BY o.role, o.partition
                   FOR UPDATE OF o""",
                [w.role for w in writes],
                [w.partition for w in writes],
                [w.generation for w in writes],
            )
            wanted = {(w.role, w.partition) for w in writes}
            refused = wanted - {(r["role"], r["partition"]) for r in owned}
            moves = [
                (topic, w.partition, before, after, w.role)
                for w in writes
                for topic, (before, after) in w.positions.items()
            ]
            moved = await conn.fetch(
                """UPDATE metrics_positions AS p
                   SET next_offset = u.after, last_digest = u.digest
                   FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[])
                     AS u(topic, partition, before, after, digest)
                   WHERE p.topic = u.topic AND p.partition = u.partition
                     AND p.next_offset = u.before
                   RETURNING p.topic, p.partition""",
                [m[0] for m in moves],
                [m[1] for m in moves],
                [m[2].offset for m in moves],
                [m[3].offset for m in moves],
                [m[3].digest for m in moves],
            )
            done = {(r["topic"], r["partition"]) for r in moved}
            refused |= {(m[4], m[1]) for m in moves if (m[0], m[1]) not in done}
            if refused:
                raise Refused(refused)
            revs = await conn.fetch(
                """UPDATE metrics_owners AS o SET rev = o.rev + 1
                   FROM unnest($1::text[], $2::int[]) AS u(role, partition)
                   WHERE o.role = u.role AND o.partition = u.partition
                   RETURNING o.partition, o.rev""",
                [w.role for w in writes if w.chunks],
                [w.partition for w in writes if w.chunks],
            )
            rev = {r["partition"]: r["rev"] for r in revs}
            item_rows = [(k, w.partition, s) for w in writes for k, s in w.items]
            if item_rows:
                await conn.execute(
                    """INSERT INTO metrics_items (key, partition, state)
                       SELECT * FROM unnest($1::bytea[], $2::int[], $3::bytea[])
                       ON CONFLICT (key) DO UPDATE
                       SET partition = excluded.partition, state = excluded.state""",
                    [r[0] for r in item_rows],
                    [r[1] for r in item_rows],
                    [r[2] for r in item_rows],
                )
            chunk_rows = [
                (k, w.partition, rev[w.partition], v) for w in writes for k, v in w.chunks
            ]
            if chunk_rows:
                await conn.execute(
                    """INSERT INTO metrics_chunks (key, partition, rev, value)
                       SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[])
                       ON CONFLICT (key) DO UPDATE
                       SET partition = excluded.partition, rev = excluded.rev,
                           value = excluded.value""",
                    [r[0] for r in chunk_rows],
                    [r[1] for r in chunk_rows],
                    [r[2] for r in chunk_rows],
                    [r[3] for r in chunk_rows],
                )

    async def figures(self) -> list[tuple[str, bytes | None]]:
        """Every figure record (what `SnapshotView.accept` takes)."""
        rows = await self.pool.fetch("SELECT key, value FROM metrics_chunks ORDER BY key")
        return [(r["key"], None if r["value"] is None else bytes(r["value"])) for r in rows]
