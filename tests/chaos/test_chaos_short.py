"""Two chaos scenarios, shortened, inside `make test`: relays killed with kill -9 every
couple of seconds, and the broker paused (SIGSTOP) for about 5 s.

The same harness as `make chaos` (tests/chaos/run.py), on one private stack for both: its
own embedded PostgreSQL and Tansu broker on free ports, every installed service as
separate processes, load through the public APIs only. Each scenario must pass every
check: nothing accepted lost, topics equal to the stores, `jingmin verify metrics` at zero
differences (when metrics runs), outboxes drained and consumers caught up; the pause also
requires writes to go on while the broker is stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from chaoslib import scenarios
from chaoslib.scenarios import SCENARIOS, Options
from chaoslib.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# About a sixth of the full suite's durations: the pause lasts 5 s, relays are killed
# every 1-2 s for 8 s; a small load (one simulated bureau, the built-in canary at 2/s).
SHORT = Options(
    scale=0.17,
    recover_timeout=90.0,
    metrics_wait=60.0,
    sim={"bureaus": 1, "concurrency": 3},
    canary={"rate": 2.0},
    callbacks=0,  # a few seconds of load: the answered callbacks are counted, not required
)


@pytest_asyncio.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    s = Stack()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.mark.parametrize("name", ["relay-kill", "broker-pause"])
async def test_short_chaos(stack: Stack, name: str) -> None:
    outcome = await scenarios.run(SCENARIOS[name], stack, SHORT)
    report = "\n".join(
        [*outcome.actions]
        + [f"{c.verdict} {c.name}: {c.detail}" + "".join(f"\n    {x}" for x in c.lines)
           for c in outcome.checks]
        + [f"note: {n}" for n in outcome.notes]
    )  # fmt: skip
    assert outcome.error is None, f"{outcome.error}\n{report}"
    assert outcome.checks, report
    failed = [c for c in outcome.checks if c.ok is False]
    assert not failed, report
