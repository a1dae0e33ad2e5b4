"""The faults: each scenario runs load, injects its fault, lets the platform recover, checks.

Every scenario prints what it does as it does it (`[+12.3s] ...`) and ends with the checks
of `chaoslib.checks`, plus its own: writes accepted while the broker was away, one effect
per Idempotency-Key, services reconnected to PostgreSQL. Durations are the full suite's;
`Timing.scale` shortens them (the short version inside `make test` uses about a sixth).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from eventkit import devstack

from chaoslib import checks
from chaoslib.checks import Check
from chaoslib.load import BuiltinLoad, Load, Recorder, SimulatorLoad, make_loads
from chaoslib.stack import Proc, Stack


@dataclass
class Options:
    load: str = "auto"  # auto | sim | builtin
    scale: float = 1.0  # multiplies every duration of a fault and of the load around it
    recover_timeout: float = 180.0
    metrics_wait: float = 120.0
    sim: dict[str, Any] = field(default_factory=dict)
    builtin: dict[str, Any] = field(default_factory=dict)
    canary: dict[str, Any] = field(default_factory=dict)
    seed: str = field(default_factory=lambda: time.strftime("%H%M%S"))
    # Callbacks a scenario's load must answer (check (s)); 0 only reports them.
    callbacks: int = 100

    def t(self, seconds: float, floor: float = 1.0) -> float:
        return max(floor, seconds * self.scale)


@dataclass
class Outcome:
    name: str
    title: str
    checks: list[Check] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok is not False for c in self.checks)


class Scene:
    """One scenario's running record and its helpers."""

    def __init__(
        self, stack: Stack, opts: Options, outcome: Outcome, echo: Callable[[str], None]
    ) -> None:
        self.stack = stack
        self.opts = opts
        self.outcome = outcome
        self.echo = echo
        self.t0 = time.monotonic()
        self.recorder = Recorder()
        self.loads: list[Load] = []
        self._load_task: asyncio.Task[None] | None = None
        self._load_stop = asyncio.Event()
        self.groups_before: set[str] = set()
        self.callbacks_before: checks.Callbacks | None = None

    def did(self, text: str) -> None:
        line = f"[+{time.monotonic() - self.t0:6.1f}s] {text}"
        self.outcome.actions.append(line)
        self.echo(f"  {line}")

    @property
    def builtin(self) -> BuiltinLoad | None:
        return next((x for x in self.loads if isinstance(x, BuiltinLoad)), None)

    async def start_load(self, *, builtin_rate: float | None = None) -> None:
        """Start the load; `builtin_rate` makes sure the built-in generator runs, at that
        rate (for a scenario that checks what only it knows)."""
        seed = f"chaos-{self.outcome.name}-{self.opts.seed}"
        kind = self.opts.load
        canary = dict(self.opts.canary)
        if builtin_rate is not None:
            canary["rate"] = builtin_rate
            kind = "auto" if kind == "sim" else kind
        self.loads, note = make_loads(
            kind,
            self.stack,
            self.recorder,
            seed,
            sim={"min_answers": self.opts.callbacks, **self.opts.sim},
            builtin={**self.opts.builtin, **({"rate": builtin_rate} if builtin_rate else {})},
            canary=canary,
        )
        if note:
            self.outcome.notes.append(f"simulator not used ({note}); built-in generator only")
        self.did("load through the public APIs only: " + " + ".join(x.name for x in self.loads))
        if any(isinstance(x, SimulatorLoad) for x in self.loads):
            self.callbacks_before = await checks.count_callbacks(self.stack)
        self._load_stop = asyncio.Event()
        self._load_task = asyncio.create_task(self._run_loads(self._load_stop))

    async def _run_loads(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(x.run(stop) for x in self.loads))

    async def finish_load(self, after: float) -> None:
        """Keep the load on for `after` more seconds, then stop it and wait for it."""
        await self.sleep(after)
        self._load_stop.set()
        if self._load_task is not None:
            await self._load_task
            for x in self.loads:
                self.did(f"load finished: {x.describe()}")
            self.did(self.recorder.summary())

    async def sleep(self, seconds: float) -> None:
        # The load runs in a task: fail fast if it crashed instead of sleeping on.
        if self._load_task is not None and self._load_task.done():
            self._load_task.result()
        await asyncio.sleep(seconds)

    async def note_groups(self, within: float | None = None) -> None:
        """The consumer groups that exist now: each must be back and caught up at the end.

        A group shows once its consumer has committed; on Tansu joining takes a while, so
        this waits (up to `within` s, the load running) until the set stops growing.
        """
        deadline = time.monotonic() + (within if within is not None else self.opts.t(20, 3))
        calm = 0
        while True:
            seen: set[str] = set()
            with contextlib.suppress(Exception):
                seen = set(await self.stack.consumer_lag())
            calm = calm + 1 if seen and seen == self.groups_before else 0
            self.groups_before = seen
            if calm >= 2 or time.monotonic() > deadline:
                break
            await self.sleep(1.0)
        self.did(
            "consumer groups before the fault: "
            + (", ".join(sorted(self.groups_before)) or "none yet")
        )

    def accepted_count(self) -> int:
        return len(self.recorder.accepted)

    async def recover_and_check(self, extra: list[Check] | None = None) -> None:
        wait = self.opts.recover_timeout
        self.did(f"recovering: waiting up to {wait:.0f} s for outboxes and consumers")
        settled = await self.stack.quiesce(self.opts.recover_timeout, groups=self.groups_before)
        self.did(
            f"{'settled' if settled.get('settled') else 'did NOT settle'} after "
            f"{settled.get('seconds')} s"
        )
        found = [
            await checks.check_accepted(self.stack, self.recorder.accepted),
            await checks.check_topics(self.stack),
            await checks.check_metrics(self.stack, self.opts.metrics_wait),
            checks.check_recovered(settled, self.groups_before),
            await checks.check_callbacks(self.stack, self.callbacks_before, self.opts.callbacks),
            *(extra or []),
        ]
        self.outcome.checks.extend(found)
        exits = self.stack.take_exits()
        if exits:
            self.outcome.notes.append(
                f"{len(exits)} process exit(s) the scenario did not cause, restarted by the "
                f"supervisor (under `jingmin dev` these would stop the stack): "
                + "; ".join(sorted(set(exits)))
            )


Body = Callable[[Scene], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    body: Body
    needs: tuple[str, ...] = ()


# ------------------------------------------------------------------------- broker paused


async def broker_pause(s: Scene) -> None:
    """Load, SIGSTOP the broker, load on while it is stopped, SIGCONT, load, recover."""
    o = s.opts
    before, pause, after = o.t(15, 4), o.t(30, 5), o.t(10, 3)
    await s.start_load()
    await s.sleep(before)
    await s.note_groups()
    n0 = s.accepted_count()
    s.stack.broker_signal(signal.SIGSTOP)
    pid = s.stack.kafka.pid if s.stack.kafka else "?"
    s.did(f"SIGSTOP to the broker (pid {pid}) for {pause:.0f} s")
    await s.sleep(pause)
    during = s.accepted_count() - n0
    s.stack.broker_signal(signal.SIGCONT)
    s.did(f"SIGCONT to the broker; {during} commands were accepted while it was paused")
    await s.finish_load(after)
    await s.recover_and_check([_writes_went_on(during, "paused")])


def _writes_went_on(n: int, how: str) -> Check:
    return Check(
        "(e) writes accepted while the broker was away",
        n > 0,
        f"{n} commands accepted while the broker was {how} (the outbox keeps them)",
    )


# ------------------------------------------------------------- broker killed, refilled


async def broker_restart(s: Scene) -> None:
    """kill -9 of the (memory-only) broker, then the runbook: relays stopped, an empty
    broker with its topics, `jingmin replay`, relays started; load the whole time."""
    o = s.opts
    before, after = o.t(15, 4), o.t(15, 4)
    await s.start_load()
    await s.sleep(before)
    await s.note_groups()
    n0 = s.accepted_count()
    s.stack.broker_kill()
    s.did("kill -9 of the broker: memory storage, so every topic and committed offset is gone")
    await s.sleep(o.t(5, 2))
    relays = s.stack.procs_of("relay")
    how = await asyncio.gather(*(asyncio.to_thread(p.stop) for p in relays))
    s.did(f"stopped the relays, as the runbook says: {'; '.join(how)}")
    waited, recreated = await s.stack.broker_start_empty()
    s.did(
        f"started an empty broker on the same port (waited {waited:.0f} s for the port to "
        "leave TIME_WAIT) and created every service's topics and the processors' own"
        + (
            f"; recreated {len(recreated)} that Tansu made wrong (auto-created with 4 "
            f"partitions, or holding records sent before they existed): {', '.join(recreated)}"
            if recreated
            else ""
        )
    )
    during = s.accepted_count() - n0
    t0 = time.monotonic()
    code, out = await s.stack.cli("replay", "--service", ",".join(s.stack.specs))
    replayed = " ".join(line.strip() for line in out.strip().splitlines()[-len(s.stack.specs) :])
    s.did(f"jingmin replay: exit {code} in {time.monotonic() - t0:.1f} s: {replayed}")
    for p in relays:
        p.start()
    await s.stack.wait_ready(relays)
    s.did("relays started again")
    await s.finish_load(after)
    replay_ok = Check(
        "(e) jingmin replay refilled the broker",
        code == 0,
        f"exit {code}: {replayed}",
        [] if code == 0 else out.strip().splitlines()[-8:],
    )
    await s.recover_and_check([replay_ok, _writes_went_on(during, "down")])


# ------------------------------------------------------------------------ relay kill -9


async def relay_kill(s: Scene) -> None:
    """kill -9 of every relay every 2-4 s for 30 s under load; the supervisor restarts them."""
    o = s.opts
    before, chaos, after = o.t(10, 4), o.t(30, 8), o.t(10, 3)
    await s.start_load()
    await s.sleep(before)
    await s.note_groups()
    rng = random.Random(o.seed)
    end = time.monotonic() + chaos
    kills = 0
    while time.monotonic() < end:
        for p in s.stack.procs_of("relay"):
            if p.running():
                p.kill9()
                kills += 1
        s.did(f"kill -9 of every relay (kill #{kills // max(1, len(s.stack.procs_of('relay')))})")
        await s.sleep(max(1.5, rng.uniform(2.0, 4.0) * min(1.0, o.scale * 2)))
    s.did(f"{kills} relay kills in {chaos:.0f} s; the supervisor restarted each after ~1 s")
    await s.finish_load(after)
    await s.recover_and_check()


# --------------------------------------------------------------------- metrics workers


def _processors(stack: Stack) -> list[int]:
    """pids of the faust processors the metrics worker runs."""
    out = []
    for proc in stack.procs_of("worker", "metrics"):
        for pid in proc.tree()[1:]:
            with contextlib.suppress(OSError):
                if b"jingmin_metrics.stream" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.append(pid)
    return out


async def _wait_for(predicate: Callable[[], Any], within: float) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        await asyncio.sleep(0.5)
    return None


async def _owned_partitions(url: str) -> float | None:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=2) as c:
            text = (await c.get(url)).text
        for line in text.splitlines():
            if line.startswith("jingmin_metrics_owned_partitions"):
                return float(line.split()[-1])
    return None


async def _leave_and_check(s: Scene, extra: Proc, who: str, found: list[Check]) -> None:
    """The extra processor leaves (SIGTERM), the load stops, and the stack must recover."""
    how = await asyncio.to_thread(extra.stop, 30.0)
    s.did(f"{who} leaves (SIGTERM): {how}")
    await s.finish_load(s.opts.t(10, 3))
    await s.recover_and_check(found)


def _extra_processor(s: Scene, name: str) -> tuple[Proc, str]:
    """Start one more metrics processor (beside the worker's); it and its /metrics URL."""
    from jingmin_metrics.stream.runner import processor_argv

    port = devstack.free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    extra = s.stack.add_process(
        f"metrics-processor-{name}",
        "metrics",
        processor_argv(),
        {
            "METRICS_FAUST_DATADIR": str(s.stack.home / "metrics-faust" / name),
            "METRICS_PROCESSOR_PORT": str(port),
        },
        url,
    )
    extra.start()
    s.did(f"a second metrics processor joins (pid {extra.pid})")
    return extra, url


async def metrics_workers(s: Scene) -> None:
    """kill -9 of a faust processor (its worker restarts it), of the whole metrics worker,
    of a processor again; then a second processor joins, takes partitions, and leaves."""
    o = s.opts
    await s.start_load()
    await s.sleep(o.t(15, 4))
    await s.note_groups()
    worker = s.stack.procs_of("worker", "metrics")[0]
    for n in range(3):
        pids = await _wait_for(lambda: _processors(s.stack), 60)
        if n == 1:
            worker.kill9()
            s.did(
                f"kill -9 #{n + 1}: the whole metrics worker (pid {worker.pid}) and its processors"
            )
        elif pids:
            victim = pids[0]
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            s.did(f"kill -9 #{n + 1}: metrics processor pid {victim} (its worker restarts it)")
        else:
            s.did(f"kill -9 #{n + 1}: no metrics processor found to kill")
        await s.sleep(o.t(12, 4))
    extra, url = _extra_processor(s, "second")
    deadline = time.monotonic() + 90
    owned = None
    while time.monotonic() < deadline:
        owned = await _owned_partitions(url)
        if owned:
            break
        await s.sleep(1)
    s.did(f"the second processor owns {owned or 0:g} partitions")
    await s.sleep(o.t(15, 4))
    await _leave_and_check(
        s,
        extra,
        "the second processor",
        [
            Check(
                "(e) a second processor joined and took partitions",
                bool(owned),
                f"owned {owned or 0:g} partitions before it left",
            )
        ],
    )


async def _metric(url: str, name: str) -> float | None:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=2) as c:
            text = (await c.get(url)).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
    return None


async def processor_zombie(s: Scene) -> None:
    """A second processor takes partitions, is paused (SIGSTOP) until the group gives them
    to the first, the load goes on, then it resumes (SIGCONT): the metrics database must
    refuse its late batch, and the figures stay exact."""
    o = s.opts
    await s.start_load()
    await s.sleep(o.t(10, 3))
    await s.note_groups()
    zombie, url = _extra_processor(s, "zombie")
    took = await _poll(lambda: _owned_partitions(url), 90)
    s.did(f"it owns {took or 0:g} partitions")
    await s.sleep(o.t(5, 2))
    claims = await _metric(url, "jingmin_metrics_rebuilds_total") or 0.0
    zombie.signal(signal.SIGSTOP)
    s.did(f"SIGSTOP to it (pid {zombie.pid}), the load going on")
    first = f"http://127.0.0.1:{s.stack.ports['metrics-processor']}/metrics"
    t0 = time.monotonic()
    moved = await _poll(lambda: _at_least(_owned_partitions(first), 12), o.recover_timeout)
    s.did(
        f"the group gave all 12 partitions to the first processor after "
        f"{time.monotonic() - t0:.0f} s"
        if moved
        else "the group did NOT move its partitions"
    )
    await s.sleep(o.t(10, 3))
    zombie.signal(signal.SIGCONT)
    s.did("SIGCONT: the zombie resumes with what it had fetched")

    async def stopped_acting_as_owner() -> tuple[float, float] | None:
        # Either its late batch reached the database and was refused, or its group
        # membership lapsed first and it claimed its partitions anew (a new generation).
        refused = await _metric(url, "jingmin_metrics_refused_batches_total") or 0.0
        reclaimed = (await _metric(url, "jingmin_metrics_rebuilds_total") or 0.0) - claims
        return (refused, reclaimed) if refused or reclaimed else None

    late = await _poll(stopped_acting_as_owner, 60)
    refused, reclaimed = late or (0.0, 0.0)
    s.did(
        f"batches the database refused it: {refused:g}; assignments it claimed anew "
        f"after resuming: {reclaimed:g}"
    )
    await _leave_and_check(
        s,
        zombie,
        "the zombie",
        [
            Check(
                "(z) the group moved the paused processor's partitions",
                bool(took) and bool(moved),
                f"it owned {took or 0:g}; the first then owned all 12: {bool(moved)}",
            ),
            Check(
                "(z) the zombie wrote nothing as the old owner",
                late is not None,
                f"{refused:g} batch(es) refused by the database, {reclaimed:g} new claim(s); "
                "verify metrics below says the figures stayed exact",
            ),
        ],
    )


async def _at_least(value: Awaitable[float | None], floor: float) -> float | None:
    got = await value
    return got if got is not None and got >= floor else None


async def _poll(probe: Callable[[], Awaitable[Any]], within: float) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(1.0)
    return None


# ---------------------------------------------------------------- API killed mid-request


async def _probe_lost_answer(s: Scene, proc: Proc, token: str) -> Check:
    """A POST whose answer the client never reads: the API is killed once the effect is
    stored, then the client sends the same request with the same Idempotency-Key."""
    port = s.stack.ports["intake-api"]
    ref = f"CHAOS-PROBE-{s.opts.seed}"
    key = f"chaos-probe-{s.opts.seed}"
    body = (
        '{"bureau":"330106","station":"330106001","channel":"call_110","kind":"alarm",'
        '"area_type":"urban","demand":"探针请求","source_ref":"' + ref + '"}'
    ).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/cases HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    conn = await asyncpg.connect(s.stack.dsn("intake"))
    try:
        stored = await _wait_async(
            lambda: conn.fetchval(
                "SELECT count(*) FROM events WHERE type = 'CaseReceived' "
                "AND data->>'source_ref' = $1",
                ref,
            ),
            30,
        )
        proc.kill9()
        writer.close()
        s.did(
            f"probe: the effect of Idempotency-Key {key} was stored; kill -9 of intake-api "
            "before the client read the answer"
        )
        await s.stack.wait_ready([proc], within=60)
        async with s.recorder.client(s.stack, "intake") as client:
            r = await client.post(
                "/v1/cases",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": key,
                },
            )
        count = await conn.fetchval(
            "SELECT count(*) FROM events WHERE type = 'CaseReceived' AND data->>'source_ref' = $1",
            ref,
        )
    finally:
        await conn.close()
    ok = bool(stored) and r.status_code == 201 and count == 1
    s.did(f"probe: the retry got {r.status_code}; cases with the probe's reference: {count}")
    return Check(
        "(f) a lost answer, retried with its key, has one effect",
        ok,
        f"answer to the retry {r.status_code}, {count} case(s) stored for the probe",
    )


async def _wait_async(fn: Callable[[], Awaitable[Any]], within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        got = await fn()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


async def _one_effect(s: Scene, load: BuiltinLoad) -> Check:
    """Per built-in story: one case per reference, and each answered step recorded once."""
    step_types = {
        "dispatch": "CaseDispatched",
        "arrival": "ArrivedOnScene",
        "resolution": "CaseResolved",
        "close": "CaseClosed",
    }
    refs = [st.source_ref for st in load.stories]
    conn = await asyncpg.connect(s.stack.dsn("intake"))
    try:
        per_ref = {
            r["ref"]: r["n"]
            for r in await conn.fetch(
                "SELECT data->>'source_ref' AS ref, count(*) AS n FROM events "
                "WHERE type = 'CaseReceived' AND data->>'source_ref' = ANY($1::text[]) GROUP BY 1",
                refs,
            )
        }
        ids = [st.case_id for st in load.stories if st.case_id]
        per_type: dict[tuple[str, str], int] = {
            (r["stream_id"], r["type"]): r["n"]
            for r in await conn.fetch(
                "SELECT stream_id, type, count(*) AS n FROM events "
                "WHERE stream_id = ANY($1::text[]) GROUP BY 1, 2",
                ids,
            )
        }
    finally:
        await conn.close()
    problems = []
    for st in load.stories:
        n = per_ref.get(st.source_ref, 0)
        if "receive" in st.steps and n != 1:
            problems.append(f"{st.source_ref}: {n} cases")
        for step in st.steps:
            if step in step_types:
                m = per_type.get((st.case_id or "", step_types[step]), 0)
                if m != 1:
                    problems.append(f"{st.source_ref} {step}: recorded {m} times")
    unanswered = [f"{st.source_ref}: {', '.join(st.gave_up)}" for st in load.stories if st.gave_up]
    commands = sum(len(st.steps) for st in load.stories)
    return Check(
        "(e) one effect per Idempotency-Key, every command answered",
        not problems and not unanswered,
        f"{len(load.stories)} stories, {commands} answered commands: {len(problems)} with "
        f"a second effect, {len(unanswered)} never answered",
        (problems + [f"never answered: {u}" for u in unanswered])[: checks.EXAMPLES],
    )


async def api_kill(s: Scene) -> None:
    """kill -9 of intake-api three times under load (clients retry with their keys), then
    the lost-answer probe."""
    o = s.opts
    before, chaos, after = o.t(8, 3), o.t(30, 10), o.t(6, 2)
    await s.start_load(builtin_rate=4.0)
    load = s.builtin
    assert load is not None
    await s.sleep(before)
    await s.note_groups()
    api = s.stack.procs["intake-api"]
    rng = random.Random(o.seed)
    for n in range(3):
        await s.sleep(rng.uniform(0.0, 1.0))
        # The load keeps requests in flight all the time: some die before the commit, some
        # after it with the answer lost; the clients retry with the same key either way.
        api.kill9()
        s.did(f"kill -9 #{n + 1} of intake-api (pid {api.pid}) under load")
        await s.sleep(chaos / 3)
    from eventkit.auth import issue_token

    token = issue_token(
        s.stack.settings, subject="chaos-probe", roles=["officer"], scopes=["330106"]
    )
    await s.stack.wait_ready([api], within=60)
    probe = await _probe_lost_answer(s, api, token)
    await s.finish_load(after)
    await s.recover_and_check([await _one_effect(s, load), probe])


# ------------------------------------------------------------------ PostgreSQL restarted


async def postgres_restart(s: Scene) -> None:
    """`pg_ctl stop -m fast` of the private PostgreSQL under load, 5 s down, started again."""
    o = s.opts
    before, down, after = o.t(15, 4), o.t(5, 2), o.t(20, 6)
    await s.start_load()
    await s.sleep(before)
    await s.note_groups()
    t0 = time.monotonic()
    await s.stack.postgres_restart(down)
    n_restart = s.accepted_count()
    s.did(
        f"PostgreSQL stopped (pg_ctl -m fast: every session cut), down {down:.0f} s, started "
        f"again ({time.monotonic() - t0:.1f} s in all)"
    )
    await s.finish_load(after)
    after_n = s.accepted_count() - n_restart
    ready = await _all_ready(s.stack)
    await s.recover_and_check(
        [
            Check(
                "(e) services reconnected",
                after_n > 0 and all(ready.values()),
                f"{after_n} commands accepted after the restart; /readyz "
                + ", ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in ready.items()),
            )
        ]
    )


async def _all_ready(stack: Stack) -> dict[str, bool]:
    out = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name in stack.specs:
            try:
                r = await client.get(f"{stack.base_url(name)}/readyz")
                out[name] = r.status_code == 200
            except httpx.HTTPError:
                out[name] = False
    return out


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("broker-pause", "broker paused (SIGSTOP), then resumed", broker_pause),
        Scenario(
            "broker-restart",
            "broker killed, restarted empty, refilled with jingmin replay",
            broker_restart,
        ),
        Scenario("relay-kill", "relays killed with kill -9 every few seconds", relay_kill),
        Scenario(
            "metrics-workers",
            "a metrics processor killed -9 three times; a second one joins and leaves",
            metrics_workers,
            needs=("metrics",),
        ),
        Scenario(
            "processor-zombie",
            "a metrics processor paused until its partitions move, then resumed: its late "
            "batch is refused",
            processor_zombie,
            needs=("metrics",),
        ),
        Scenario(
            "api-kill",
            "intake API killed mid-request; clients retry with their Idempotency-Key",
            api_kill,
            needs=("intake",),
        ),
        Scenario("postgres-restart", "PostgreSQL restarted under load", postgres_restart),
    )
}


async def run(
    scenario: Scenario, stack: Stack, opts: Options, echo: Callable[[str], None] = print
) -> Outcome:
    outcome = Outcome(scenario.name, scenario.title)
    missing = [n for n in scenario.needs if n not in stack.specs]
    if missing:
        why = "; ".join(f"{n}: {stack.skipped.get(n, 'not installed')}" for n in missing)
        outcome.skipped = f"needs {', '.join(missing)} ({why})"
        echo(f"== {scenario.name}: SKIPPED, {outcome.skipped}")
        return outcome
    echo(f"== {scenario.name}: {scenario.title}")
    scene = Scene(stack, opts, outcome, echo)
    t0 = time.monotonic()
    try:
        await scenario.body(scene)
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        echo(f"  scenario error: {outcome.error}")
        if scene._load_task is not None and not scene._load_task.done():
            scene._load_stop.set()
            try:
                await asyncio.wait_for(scene._load_task, 60)
            except BaseException:
                scene._load_task.cancel()
    outcome.seconds = time.monotonic() - t0
    for c in outcome.checks:
        echo(f"  {c.verdict} {c.name}: {c.detail}")
        for line in c.lines:
            echo(f"       {line}")
    for note in outcome.notes:
        echo(f"  note: {note}")
    return outcome
