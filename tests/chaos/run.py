"""`make chaos`: break a private Jingmin platform in six ways and check that nothing is lost.

Each scenario gets a fresh private stack (its own embedded PostgreSQL and Tansu broker on
free ports, every installed service's API, relay and workers as separate processes; see
tests/chaos/chaoslib/stack.py), runs load through the public APIs, injects its fault, lets
the platform recover and checks (chaoslib/checks.py):

  (a) every command an API accepted is in its store;
  (b) the topics hold exactly the messages the stores imply (duplicates allowed);
  (c) `jingmin verify metrics` shows zero differences, every event applied (when metrics runs);
  (d) every outbox drained and every consumer group caught up;
  (s) the load exercised satisfaction: at least 100 callbacks answered (officer phone
      answers and the SMS survey page) with 满意, 基本满意 and 不满意 all present, 不满意
      answers carried through recovery orders to answered follow-up callbacks;
  (e), (f) the scenario's own promise (writes during a broker outage, one effect per
      Idempotency-Key, reconnection after a database restart, ...).

Prints a table of scenario -> check -> PASS/FAIL, writes chaos-results/latest.json, and
exits 1 if any check failed. `uv run python tests/chaos/run.py --help` lists the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHAOS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(CHAOS_DIR))

from chaoslib import scenarios  # noqa: E402
from chaoslib.scenarios import SCENARIOS, Options, Outcome  # noqa: E402
from chaoslib.stack import Stack  # noqa: E402

ROOT = CHAOS_DIR.parents[1]
RESULTS = ROOT / "chaos-results"


def table(outcomes: list[Outcome]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    for o in outcomes:
        if o.skipped:
            rows.append((o.name, "-", "SKIP", o.skipped))
            continue
        if o.error:
            rows.append((o.name, "scenario ran to the end", "FAIL", o.error))
        for c in o.checks:
            rows.append((o.name, c.name, c.verdict, c.detail))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{'scenario':{w0}}  {'check':{w1}}  result  detail"]
    lines.append("-" * min(160, len(lines[0]) + 60))
    last = ""
    for name, check, verdict, detail in rows:
        shown = name if name != last else ""
        last = name
        lines.append(f"{shown:{w0}}  {check:{w1}}  {verdict:6}  {detail}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
        return 2
    opts = Options(
        load=args.load,
        scale=args.scale,
        recover_timeout=args.recover_timeout,
        metrics_wait=args.metrics_wait,
        callbacks=args.callbacks,
        sim={"concurrency": args.concurrency, "bureaus": args.bureaus},
        builtin={"rate": args.rate},
        canary={"rate": args.canary_rate},
    )
    services = args.services.split(",") if args.services else None
    outcomes: list[Outcome] = []
    RESULTS.mkdir(exist_ok=True)
    t0 = time.monotonic()
    stack: Stack | None = None
    try:
        for name in names:
            if stack is None or not args.shared_stack:
                if stack is not None:
                    await stack.stop()
                stack = Stack(services, keep=args.keep)
                try:
                    await stack.start()
                except Exception as exc:
                    print(f"== {name}: the stack did not start: {exc}", flush=True)
                    broken = Outcome(name, SCENARIOS[name].title)
                    broken.error = f"the stack did not start: {str(exc)[:300]}"
                    outcomes.append(broken)
                    await stack.stop()
                    stack = None
                    continue
            outcome = await scenarios.run(SCENARIOS[name], stack, opts)
            outcomes.append(outcome)
            if not outcome.ok:
                # The processes' logs explain a failure; the stack's temp dir will not last.
                kept = RESULTS / f"logs-{name}"
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(stack.logs, kept)
                print(f"  logs of every process kept in {kept.relative_to(ROOT)}")
            print(flush=True)
    finally:
        if stack is not None:
            await stack.stop()
    wall = time.monotonic() - t0
    print(f"chaos: {len(outcomes)} scenario(s) in {wall / 60:.1f} min (load: {args.load})")
    print(table(outcomes))
    failed = [o.name for o in outcomes if not o.ok]
    print(f"\n{'FAIL: ' + ', '.join(failed) if failed else 'PASS: every check of every scenario'}")
    RESULTS.mkdir(exist_ok=True)
    result: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "wall_seconds": round(wall, 1),
        "options": {k: v for k, v in vars(args).items()},
        "scenarios": [
            {
                "name": o.name,
                "title": o.title,
                "ok": o.ok,
                "skipped": o.skipped,
                "error": o.error,
                "seconds": round(o.seconds, 1),
                "actions": o.actions,
                "notes": o.notes,
                "checks": [
                    {"name": c.name, "result": c.verdict, "detail": c.detail, "lines": c.lines}
                    for c in o.checks
                ],
            }
            for o in outcomes
        ],
    }
    (RESULTS / "latest.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "scenarios", nargs="*", help=f"scenarios to run (default all): {', '.join(SCENARIOS)}"
    )
    p.add_argument(
        "--load",
        choices=("auto", "sim", "builtin"),
        default="auto",
        help="load: jingmin simulate (sim), the built-in generator (builtin), or both (auto;"
        " the built-in one alone if the simulator cannot be imported)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply every fault/load duration")
    p.add_argument("--concurrency", type=int, default=8, help="simulator concurrency")
    p.add_argument("--bureaus", type=int, default=2, help="simulated bureaus")
    p.add_argument(
        "--rate", type=float, default=4.0, help="built-in stories per second (--load builtin)"
    )
    p.add_argument(
        "--canary-rate",
        type=float,
        default=2.0,
        help="built-in stories per second beside the simulator (--load auto)",
    )
    p.add_argument(
        "--callbacks",
        type=int,
        default=100,
        help="callbacks the simulator must answer in each scenario (check (s); 0: only count)",
    )
    p.add_argument("--recover-timeout", type=float, default=180.0)
    p.add_argument("--metrics-wait", type=float, default=120.0, help="verify metrics --wait")
    p.add_argument("--services", help="comma-separated services (default: every installed one)")
    p.add_argument(
        "--shared-stack", action="store_true", help="one stack for every scenario (faster)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, data)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
