"""Extension point: checks run after a simulation, against what it did.

A package that can judge the platform's figures (the metrics service, `jingmin verify`)
declares a check in entry point group `jingmin.sim.checks`:

    [project.entry-points."jingmin.sim.checks"]
    figures = "jingmin_metrics.simcheck:check_simulation"

Each is `async def check(result: Result, clients: Mapping[str, httpx.AsyncClient]) -> dict`
returning at least {"name": ..., "status": "pass" | "fail" | "skipped", "detail": ...}.
`result.tallies` holds what the simulator did (cases by kind and channel, answers by
satisfaction and trigger, on-time and late steps, complaints filed...), `result.figures()`
the ratios derived from them, `result.start` / `result.end` the simulated window.

A check that also declares a keyword parameter `context` receives a `CheckContext`: the
simulated bureau codes, the services' base URLs and the simulator's token source (to call
an API as, say, a bureau's supervisor). Checks without it are called as before.

`jingmin simulate --checks` runs every installed check; a failed check (or one that raises)
makes the run exit 1. No check ships with the simulator itself: the metrics service ships
`figures` (`jingmin_metrics.simcheck`), which compares these figures with its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import httpx

GROUP = "jingmin.sim.checks"
Check = Callable[..., Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class CheckContext:
    """What a check may need beyond the result (passed to checks that accept `context`)."""

    bureaus: tuple[str, ...]
    urls: Mapping[str, str] = field(default_factory=dict)
    # A jingmin_sim.api.TokenSource: `tokens.token(Actor("supervisor", who, bureau))`.
    tokens: Any = None


def _takes_context(check: Check) -> bool:
    try:
        return "context" in inspect.signature(check).parameters
    except (TypeError, ValueError):
        return False


def installed() -> dict[str, Check]:
    return {ep.name: ep.load() for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name)}


async def run_checks(
    result: Any,
    clients: Mapping[str, httpx.AsyncClient],
    context: CheckContext | None = None,
) -> list[dict[str, Any]]:
    outcomes = []
    for name, check in installed().items():
        try:
            if context is not None and _takes_context(check):
                outcome = dict(await check(result, clients, context=context))
            else:
                outcome = dict(await check(result, clients))
        except Exception as exc:  # a broken check is a failed check, not a crashed run
            outcome = {"status": "fail", "detail": f"{type(exc).__name__}: {exc}"}
        outcome.setdefault("name", name)
        outcomes.append(outcome)
    return outcomes
