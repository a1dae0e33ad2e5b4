"""Load through the public HTTP APIs only, and a record of every command the platform accepted.

`Recorder` hangs on the httpx clients' response hook, so it sees exactly what a client saw:
each 2xx answer to a POST that names a stream (`<x>_id`, `version`, `events`, the shape of
`eventkit.commands.accepted`). Those answers are the platform's promises; check (a) holds
the stores to them.

Two generators share it:
- `SimulatorLoad`: `jingmin simulate` (package `jingmin_sim`) in backfill mode, one short
  window after another with a fresh seed each, until the time is up;
- `BuiltinLoad`: a small deterministic generator (intake cases received, dispatched,
  arrived, resolved and closed, some of them complaints; visits completed with an issue
  raised) that retries every command with its Idempotency-Key until it is answered. The
  API-kill scenario uses it, since it knows which effect each key must have had.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from eventkit.auth import issue_token

from chaoslib.stack import Stack

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Accepted:
    """One accepted command: the stream it wrote and the events it says it recorded."""

    service: str
    stream_id: str
    version: int
    events: tuple[tuple[str, int], ...]
    endpoint: str


@dataclass
class Recorder:
    accepted: list[Accepted] = field(default_factory=list)
    # (service, status class) -> count, for what the scenario prints.
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)

    def hook(self, service: str) -> Callable[[httpx.Response], Awaitable[None]]:
        async def on_response(response: httpx.Response) -> None:
            request = response.request
            self.answers[(service, f"{response.status_code // 100}xx")] += 1
            if request.method != "POST" or not 200 <= response.status_code < 300:
                return
            if "json" not in response.headers.get("content-type", ""):
                return
            await response.aread()
            try:
                body = response.json()
            except ValueError:
                return
            found = accepted_from(service, request.url.path, body)
            if found is not None:
                self.accepted.append(found)

        return on_response

    def client(self, stack: Stack, service: str, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=stack.base_url(service),
            timeout=httpx.Timeout(30.0, connect=5.0),
            event_hooks={"response": [self.hook(service)]},
            **kw,
        )

    def summary(self) -> str:
        by_service: dict[str, list[str]] = {}
        for (service, cls), n in sorted(self.answers.items()):
            by_service.setdefault(service, []).append(f"{n} {cls}")
        parts = [f"{s}: {', '.join(v)}" for s, v in by_service.items()]
        errors = sum(self.transport_errors.values())
        return f"{len(self.accepted)} accepted commands; answers {'; '.join(parts) or 'none'}" + (
            f"; {errors} transport errors (retried)" if errors else ""
        )


def accepted_from(service: str, path: str, body: Any) -> Accepted | None:
    """The stream a command's 2xx answer names, if it has the `accepted()` shape."""
    if not isinstance(body, dict) or not isinstance(body.get("version"), int):
        return None
    events = body.get("events")
    if not isinstance(events, list):
        return None
    stream_id = next(
        (
            v
            for k, v in body.items()
            if k.endswith("_id") and isinstance(v, str) and _HEX32.match(v)
        ),
        None,
    )
    if stream_id is None:
        return None
    recorded = tuple(
        (str(e["type"]), int(e["version"]))
        for e in events
        if isinstance(e, dict) and "type" in e and "version" in e
    )
    endpoint = re.sub(r"[0-9a-f]{32}", "{id}", path)
    return Accepted(service, stream_id, body["version"], recorded, endpoint)


@contextlib.asynccontextmanager
async def clients(
    stack: Stack, recorder: Recorder, services: Any = None
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    names = [n for n in stack.specs if services is None or n in services]
    async with contextlib.AsyncExitStack() as exits:
        out = {}
        for name in names:
            out[name] = await exits.enter_async_context(recorder.client(stack, name))
        yield out


# ------------------------------------------------------------------------------ simulator


def simulator_available() -> str | None:
    """None when `jingmin_sim.simulate.simulate` can be used, else why not."""
    try:
        from jingmin_sim.api import DevTokens  # noqa: F401
        from jingmin_sim.simulate import Config, simulate  # noqa: F401
    except Exception as exc:
        return f"jingmin_sim not usable: {type(exc).__name__}: {exc}"
    return None


# The simulated window ends at this local (Beijing) hour of a recent working day, so the
# load is the same whatever the hour or the day the chaos runs (a window ending "now" at
# 03:00 would hold a handful of 110 calls and no service-window case).
WINDOW_END_HOUR = 12


def window_end(now: datetime) -> datetime:
    """The end of every simulated window: 12:00 Beijing time on the latest working day
    of the last four days (the latest 12:00 past, whatever the day, in a long holiday)."""
    from jingmin_sim.model import TZ, is_workday

    local = now.astimezone(TZ)
    latest = local.replace(hour=WINDOW_END_HOUR, minute=0, second=0, microsecond=0)
    if latest > local:
        latest -= timedelta(days=1)
    for back in range(4):
        day = latest - timedelta(days=back)
        if is_workday(day.date()):
            return day.astimezone(UTC)
    return latest.astimezone(UTC)


@dataclass
class SimulatorLoad:
    """`jingmin simulate` windows back to back until told to stop, as a drill.

    Each window is a short backfill (every step of a story posted at once, with its own
    event time) over the same hours of a recent working day (`window_end`), with a new
    seed each: new stories, new Idempotency-Keys. The simulator runs as a drill
    (`Config.drill`): every callback is answered, by an officer's call or on the SMS
    survey page (links read from visits' dev sink; the load's bureaus are given no quiet
    hours, so links go out whatever the hour), with 满意, 基本满意 and 不满意 all present;
    what follows (the callback, a 不满意's recovery order and its follow-up call) comes
    minutes later, so it runs under the fault too. When told to stop, no new story of the
    window starts; the follow-ups of those begun run to their end (for at most `drain`
    seconds, then the run is cancelled where it stands). If the complete windows have not
    answered `min_answers` callbacks by then (a fault that held the consumers back for
    most of the load), windows go on for up to `extend` more seconds until they have.
    Only answers the client received count as accepted.
    """

    stack: Stack
    recorder: Recorder
    seed: str
    bureaus: int = 1
    stations: int = 3
    window_hours: float = 3.0
    rate: float = 1.0
    concurrency: int = 4
    drain: float = 120.0
    min_answers: int = 0
    extend: float = 120.0
    name: str = "jingmin simulate (drill)"
    windows: int = 0
    requests: int = 0
    drained: bool | None = None
    extended: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    tallies: Counter[str] = field(default_factory=Counter)

    async def _no_quiet_hours(self, http: Mapping[str, httpx.AsyncClient]) -> list[str]:
        """Give the simulated bureaus no SMS quiet hours (a chaos-load setting: the
        default 20:00-08:00 would hold every link back for a night-time run)."""
        from jingmin_sim.geography import pick_bureaus

        visits = http.get("visits")
        if visits is None:
            return []
        codes = pick_bureaus(self.bureaus, None)
        token = issue_token(
            self.stack.settings, subject="chaos-load", roles=["admin"], scopes=codes
        )
        for code in codes:
            r = await visits.put(
                f"/v1/policies/{code}",
                json={"quiet_start": "00:00", "quiet_end": "00:00"},
                headers={"Authorization": f"Bearer {token}"},
            )
            r.raise_for_status()
        return codes

    async def run(self, stop: asyncio.Event) -> None:
        """Simulate window after window until `stop` is set."""
        from jingmin_sim.api import DevTokens
        from jingmin_sim.simulate import Config, simulate
        from jingmin_sim.sink import SmsSink

        tokens = DevTokens(self.stack.settings)
        end = window_end(datetime.now(UTC))
        sink = SmsSink(self.stack.dsn("visits")) if "visits" in self.stack.specs else None
        try:
            async with clients(self.stack, self.recorder) as http:
                await self._no_quiet_hours(http)
                stopped_at: list[float] = []
                for i in itertools.count():
                    if stop.is_set() and (self._enough() or self._overtime(stopped_at)):
                        break
                    halt = asyncio.Event()
                    config = Config(
                        seed=f"{self.seed}-{i}",
                        bureaus=self.bureaus,
                        stations=self.stations,
                        days=self.window_hours / 24,
                        end=end,
                        rate=self.rate,
                        concurrency=self.concurrency,
                        discover_timeout=30.0,
                        poll_interval=0.5,
                        progress=False,
                        drill=True,
                    )
                    run = asyncio.create_task(
                        simulate(
                            config,
                            http,
                            tokens,
                            sms_sink=sink,
                            check_health=False,
                            stop_arrivals=halt,
                        )
                    )
                    halter = asyncio.create_task(self._halt(stop, halt, stopped_at))
                    halted = asyncio.create_task(halt.wait())
                    await asyncio.wait({run, halted}, return_when=asyncio.FIRST_COMPLETED)
                    halter.cancel()
                    halted.cancel()
                    if not run.done():
                        # No new story starts; those begun finish, follow-ups included.
                        await asyncio.wait({run}, timeout=self.drain)
                        self.drained = run.done()
                    if not run.done():
                        run.cancel()
                        await asyncio.gather(run, return_exceptions=True)
                        await _cancel_orphans()
                        break
                    result = run.result()
                    self.windows += 1
                    self.requests += result.stats.requests
                    self.tallies.update(result.tallies)
                    for (endpoint, status, title), n in result.stats.errors.items():
                        self.errors[f"{status} {endpoint} {title}"[:120]] += n
                    for what, n in result.stats.transport_failures.items():
                        self.errors[f"transport {what}"[:120]] += n
                if stopped_at:
                    self.extended = max(0.0, time.monotonic() - stopped_at[0])
        finally:
            if sink is not None:
                await sink.close()

    def _enough(self) -> bool:
        return self.tallies["answers.via.officer"] + self.tallies["answers.via.sms"] >= (
            self.min_answers
        )

    def _overtime(self, stopped_at: list[float]) -> bool:
        return bool(stopped_at) and time.monotonic() - stopped_at[0] > self.extend

    async def _halt(
        self, stop: asyncio.Event, halt: asyncio.Event, stopped_at: list[float]
    ) -> None:
        """Set `halt` (no new story of the window) once `stop` is set and the complete
        windows answered enough callbacks, or `extend` seconds after `stop`."""
        await stop.wait()
        if not stopped_at:
            stopped_at.append(time.monotonic())
        if not self._enough():  # counted per complete window: no change within this one
            await asyncio.sleep(max(0.0, stopped_at[0] + self.extend - time.monotonic()))
        halt.set()

    def describe(self) -> str:
        errs = sum(self.errors.values())
        top = ", ".join(f"{k} ×{n}" for k, n in self.errors.most_common(3))
        t = self.tallies
        drained = {None: "", True: "; the last window drained", False: "; the last window cut"}
        return (
            f"{self.name}: {self.windows} window(s) of {self.window_hours:g} h, "
            f"{self.bureaus} bureau(s) × {self.stations} stations, concurrency "
            f"{self.concurrency}{drained[self.drained]}"
            + (f", {self.extended:.0f} s after the stop" if self.extended >= 1 else "")
            + "; answers by phone "
            f"{t['answers.via.officer']}, by SMS page {t['answers.via.sms']}; "
            f"{errs} errors" + (f" ({top})" if top else "")
        )


async def _cancel_orphans() -> None:
    """Stop the simulator's story tasks a cancelled run left behind.

    Cancelling `simulate` while its batch loop waits for a free slot leaves the stories
    already started running on their own (they are gathered only after the loop); they
    would go on posting after the load's time is up, through clients about to close.
    """
    mine = asyncio.current_task()
    orphans = [
        t
        for t in asyncio.all_tasks()
        if t is not mine
        and not t.done()
        and "jingmin_sim" in getattr(getattr(t.get_coro(), "cr_code", None), "co_filename", "")
    ]
    for t in orphans:
        t.cancel()
    await asyncio.gather(*orphans, return_exceptions=True)


# ------------------------------------------------------------------------------- built-in

BUREAU = "330106"
STATIONS = ("330106001", "330106002", "330106003")
# (channel, kind, area_type, branch, category)
SHAPES = (
    ("call_110", "alarm", "urban", "public_order", "theft.vehicle"),
    ("call_110", "help", "suburban", "patrol", "missing_person"),
    ("hotline", "opinion", "urban", "public_order", "noise"),
    ("online", "complaint", "urban", "other", "attitude"),
    ("window", "service", "rural", "household", "id_card.reissue"),
)


@dataclass
class Lifecycle:
    """What one built-in story was answered: per Idempotency-Key, the accepted body."""

    source_ref: str
    steps: dict[str, Any] = field(default_factory=dict)
    case_id: str | None = None
    gave_up: list[str] = field(default_factory=list)


@dataclass
class BuiltinLoad:
    """Cases through their whole life on intake, plus visits that raise an issue.

    One story starts every 1/`rate` s; each posts its steps one after another (a short
    pause between), each step retried with the same Idempotency-Key on a transport error,
    a 5xx or a 429 until it is answered or `give_up` seconds have passed.
    """

    stack: Stack
    recorder: Recorder
    run_id: str
    rate: float = 4.0
    visit_share: float = 0.2
    give_up: float = 120.0
    name: str = "built-in generator"
    stories: list[Lifecycle] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    visits: int = 0

    def _token(self, role: str) -> str:
        return issue_token(
            self.stack.settings, subject=f"chaos-{role}", roles=[role], scopes=[BUREAU]
        )

    async def post(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any], key: str, token: str
    ) -> httpx.Response | None:
        """POST until answered (not 5xx/429) or `give_up`; None if never answered."""
        deadline = time.monotonic() + self.give_up
        delay = 0.2
        while True:
            try:
                r = await client.post(
                    path,
                    json=body,
                    headers={"Idempotency-Key": key, "Authorization": f"Bearer {token}"},
                )
                if r.status_code < 500 and r.status_code != 429:
                    if r.status_code >= 400:
                        self.refused[f"{r.status_code} {path.split('/')[-1]}"] += 1
                    return r
                self.retries[f"HTTP {r.status_code}"] += 1
            except httpx.TransportError as exc:
                self.retries[type(exc).__name__] += 1
                self.recorder.transport_errors[type(exc).__name__] += 1
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 1.6, 2.0)

    async def case_story(
        self, http: Mapping[str, httpx.AsyncClient], n: int, token: str, rng: random.Random
    ) -> None:
        channel, kind, area, branch, category = SHAPES[n % len(SHAPES)]
        story = Lifecycle(source_ref=f"CHAOS-{self.run_id}-{n}")
        self.stories.append(story)
        body: dict[str, Any] = {
            "bureau": BUREAU,
            "station": STATIONS[n % len(STATIONS)],
            "channel": channel,
            "kind": kind,
            "area_type": area,
            "branch": branch,
            "category": category,
            "person": {"name": "测试群众", "phone": f"139{n % 100_000_000:08d}"},
            "demand": "混沌测试：请尽快处理并告知结果。",
            "source_ref": story.source_ref,
        }
        intake = http["intake"]
        key = f"chaos-{self.run_id}-{n}"
        r = await self.post(intake, "/v1/cases", body, f"{key}-receive", token)
        if r is None or r.status_code != 201:
            story.gave_up.append("receive")
            return
        story.steps["receive"] = r.json()
        case_id = story.case_id = r.json()["case_id"]
        steps: list[tuple[str, str, dict[str, Any]]] = [
            (
                "dispatch",
                "dispatch",
                {
                    "unit": STATIONS[n % len(STATIONS)],
                    "officer_ids": ["chaos-officer-1"],
                    "reason": "出警处置",
                    "purpose": "核实情况",
                },
            ),
            ("arrival", "arrival", {"officer_id": "chaos-officer-1"}),
            ("resolution", "resolution", {"reply": "已处理完毕，已电话告知群众。"}),
            ("close", "close", {}),
        ]
        if kind in ("opinion", "complaint", "service"):
            steps = steps[2:]  # no dispatch for a non-emergency
        for step, path, step_body in steps:
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            r = await self.post(
                intake, f"/v1/cases/{case_id}/{path}", step_body, f"{key}-{step}", token
            )
            if r is None or not 200 <= r.status_code < 300:
                story.gave_up.append(step)
                return
            story.steps[step] = r.json()

    async def visit_story(
        self, http: Mapping[str, httpx.AsyncClient], n: int, token: str, rng: random.Random
    ) -> None:
        visits = http.get("visits")
        if visits is None:
            return
        self.visits += 1
        now = datetime.now(UTC).replace(microsecond=0)
        station = STATIONS[n % len(STATIONS)]
        key = f"chaos-{self.run_id}-visit-{n}"
        r = await self.post(
            visits,
            "/v1/visits",
            {
                "bureau": BUREAU,
                "station": station,
                "programme": "aimin",
                "mode": "in_person",
                "target_type": "household",
                "area_type": "urban",
                "officer_id": "chaos-officer-2",
                "officer_rank": "community_officer",
                "planned_for": (now - timedelta(minutes=5)).isoformat(),
                "occurred_at": (now - timedelta(minutes=10)).isoformat(),
            },
            f"{key}-schedule",
            token,
        )
        if r is None or r.status_code != 201:
            return
        visit_id = r.json().get("visit_id")
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        await self.post(
            visits,
            f"/v1/visits/{visit_id}/complete",
            {
                "feedback": rng.choice(["supportive", "critical", "indifferent"]),
                "issues": [{"kind": "opinion", "category": "noise", "summary": "夜间噪音扰民"}],
                "occurred_at": now.isoformat(),
            },
            f"{key}-complete",
            token,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Start stories at `rate` until `stop` is set, then let those under way finish."""
        rng = random.Random(self.run_id)
        token = self._token("officer")
        tasks: set[asyncio.Task[None]] = set()
        async with clients(self.stack, self.recorder) as http:
            t0 = time.monotonic()
            for n in itertools.count():
                due = t0 + n / self.rate
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
                if stop.is_set():
                    break
                story = (
                    self.visit_story(http, n, token, rng)
                    if "visits" in http and rng.random() < self.visit_share
                    else self.case_story(http, n, token, rng)
                )
                task = asyncio.create_task(story)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            # Stories under way finish (their retries included): an unanswered command is
            # exactly what this generator must not leave behind.
            if tasks:
                await asyncio.gather(*tasks)

    def describe(self) -> str:
        steps = sum(len(s.steps) for s in self.stories)
        gave_up = sum(len(s.gave_up) for s in self.stories)
        retries = ", ".join(f"{k} ×{n}" for k, n in self.retries.most_common(4)) or "none"
        refused = ", ".join(f"{k} ×{n}" for k, n in self.refused.most_common(4))
        return (
            f"{self.name}: {len(self.stories)} case stories ({steps} commands answered, "
            f"{gave_up} never answered), {self.visits} visit stories at {self.rate:g}/s; "
            f"retries: {retries}" + (f"; refused: {refused}" if refused else "")
        )


Load = SimulatorLoad | BuiltinLoad


def make_loads(
    kind: str, stack: Stack, recorder: Recorder, seed: str, **options: Any
) -> tuple[list[Load], str | None]:
    """The generators for `kind`, and a note when the simulator could not be used.

    `auto` runs the simulator (realistic traffic on every service) together with the
    built-in generator as a canary: the simulator's stories wait for what consumers create
    (a callback after a resolution), so while the broker is away they stall, and the
    canary shows that the APIs go on accepting writes meanwhile.
    """
    sim = options.get("sim", {})
    builtin = options.get("builtin", {})
    if kind == "builtin":
        return [BuiltinLoad(stack, recorder, seed, **builtin)], None
    why = simulator_available()
    if why is not None:
        if kind == "sim":
            raise RuntimeError(why)
        return [BuiltinLoad(stack, recorder, seed, **builtin)], why
    loads: list[Load] = [SimulatorLoad(stack, recorder, seed, **sim)]
    if kind == "auto":
        loads.append(
            BuiltinLoad(stack, recorder, seed, **{"rate": 2.0, **options.get("canary", {})})
        )
    return loads, None
