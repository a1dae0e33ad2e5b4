"""Opt-outs as audited facts: recorded, and withdrawn, each an event on the person's stream.

The `opt_outs` table is what every decision reads (a callback is suppressed, a sampled
unit is not contacted); the `opt_out` stream (`opt-out-<subject id>`) is the record of who
changed it, when and why. Both are written in one transaction. The facts stay inside the
service (no topic): nothing outside needs to know who declined to be surveyed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventkit.auth import Principal
from eventkit.store import NewEvent, PostgresEventStore, PostgresTransaction

STREAM_TYPE = "opt_out"
RECORDED = "OptOutRecorded"
WITHDRAWN = "OptOutWithdrawn"


def stream_id(subject_id: str) -> str:
    return f"opt-out-{subject_id}"


async def _append(
    tx: PostgresTransaction, subject_id: str, bureau: str, type_: str, data: dict[str, Any],
    principal: Principal, now: datetime, correlation_id: str | None,
) -> None:  # fmt: skip
    sid = stream_id(subject_id)
    version = len(await tx.load(sid))
    metadata = {"actor": principal.subject, "correlation_id": correlation_id}
    event = NewEvent(
        type=type_,
        data={"subject_id": subject_id, "bureau": bureau, **data},
        occurred_at=now,
        bureau=bureau,
        metadata={k: v for k, v in metadata.items() if v},
    )
    await tx.append(sid, STREAM_TYPE, version, [event])


async def record(
    store: PostgresEventStore,
    subject_id: str,
    bureau: str,
    principal: Principal,
    now: datetime,
    correlation_id: str | None,
) -> bool:
    """Record an opt-out; False if the person had already opted out (nothing written)."""
    async with store.transaction() as tx:
        inserted = await tx.connection.fetchval(
            """INSERT INTO opt_outs (subject_id, bureau, recorded_by) VALUES ($1, $2, $3)
               ON CONFLICT (subject_id) DO NOTHING RETURNING true""",
            subject_id,
            bureau,
            principal.subject,
        )
        if inserted:
            await _append(
                tx, subject_id, bureau, RECORDED, {"recorded_by": principal.subject},
                principal, now, correlation_id,
            )  # fmt: skip
    return bool(inserted)


async def withdraw(
    store: PostgresEventStore,
    subject_id: str,
    bureau: str,
    reason: str,
    principal: Principal,
    now: datetime,
    correlation_id: str | None,
) -> bool:
    """Withdraw the person's opt-out recorded in `bureau`; False if there is none there.

    The reason is how the person said so (e.g. "本人来电要求恢复回访"); it is an officer's
    note, not the person's words, and stays inside the service like the rest of the fact.
    """
    async with store.transaction() as tx:
        removed = await tx.connection.fetchval(
            "DELETE FROM opt_outs WHERE subject_id = $1 AND bureau = $2 RETURNING true",
            subject_id,
            bureau,
        )
        if removed:
            await _append(
                tx, subject_id, bureau, WITHDRAWN,
                {"withdrawn_by": principal.subject, "reason": reason},
                principal, now, correlation_id,
            )  # fmt: skip
    return bool(removed)
