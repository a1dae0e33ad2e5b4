"""`jingmin metrics-rebuild`: forget the processors' state so they recompute every figure.

The runbook step (docs/operations/replay-and-rebuild.md, "Rebuild the figures") as one
command: in one transaction it empties the items, the read positions, the partition owners
and the figure records. Started again, the processors find no stored position and read every
retained source topic from offset 0. Stop every processor first: one still running holds
items in memory that the empty database no longer vouches for.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
import typer

STATE_TABLES = ("metrics_items", "metrics_positions", "metrics_owners", "metrics_chunks")


async def forget_state(dsn: str) -> dict[str, int]:
    """Empty the processors' state tables in one transaction; rows each one held."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            held = {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in STATE_TABLES}
            await conn.execute(f"TRUNCATE {', '.join(STATE_TABLES)}")
        return held
    finally:
        await conn.close()


def metrics_rebuild(
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: every metrics processor is stopped.")
    ] = False,
) -> None:
    """Forget the metrics processors' state: restarted, they recompute every figure from the
    retained topics (stop them first; then `jingmin verify metrics --wait 600`)."""
    from jingmin_metrics.settings import metrics_dsn, metrics_settings

    if not yes:
        typer.echo(
            "this empties the metrics state (items, positions, owners, figures): stop every "
            "metrics processor, then run again with --yes",
            err=True,
        )
        raise typer.Exit(2)
    held = asyncio.run(forget_state(metrics_dsn(metrics_settings())))
    typer.echo(
        "metrics state forgotten: "
        + ", ".join(f"{t} {n:,} rows" for t, n in held.items())
        + "; start the processors and wait for `jingmin verify metrics` to report 0 differences"
    )
