"""Extension point: checks run after a simulation, against what it did.

A package that can judge the platform's figures (the metrics service, `jingmin verify`)
declares a check in entry point group `jingmin.sim.checks`:

    [project.entry-points."jingmin.sim.checks"]
    figures = "jingmin_metrics.checks:check_simulation"

Each is `async def check(result: Result, clients: Mapping[str, httpx.AsyncClient]) -> dict`
returning at least {"name": ..., "status": "pass" | "fail" | "skipped", "detail": ...}.
`result.tallies` holds what the simulator did (cases by kind and channel, answers by
satisfaction and trigger, on-time and late steps, complaints filed...), `result.figures()`
the ratios derived from them. `jingmin simulate --checks` runs every installed check. No
check ships with the simulator itself: until the metrics service publishes its figures
there is nothing independent to compare them with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import httpx

GROUP = "jingmin.sim.checks"
Check = Callable[[Any, Mapping[str, httpx.AsyncClient]], Awaitable[dict[str, Any]]]


def installed() -> dict[str, Check]:
    return {ep.name: ep.load() for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name)}


async def run_checks(result: Any, clients: Mapping[str, httpx.AsyncClient]) -> list[dict[str, Any]]:
    outcomes = []
    for name, check in installed().items():
        try:
            outcome = dict(await check(result, clients))
        except Exception as exc:  # a broken check is a failed check, not a crashed run
            outcome = {"status": "fail", "detail": f"{type(exc).__name__}: {exc}"}
        outcome.setdefault("name", name)
        outcomes.append(outcome)
    return outcomes
