"""Runs the stories: when each starts, how many at once, and in which order they may write.

Two clocks:

- backfill (`--compress`, the default): the simulated window is the last N days ending at
  `--end` (default now), so every occurred_at is in the past. A story's steps are posted
  back to back, each with its own event time; stories that follow another one's outcome
  (a callback after a resolution, a recovery order after a 不满意) form the next
  *generation*, run once the previous one is done and the platform's consumers have
  created what they wait for.
- live (`--live`): the window starts now and runs in real time; each step is posted when its
  time comes, follow-ups as soon as they are due.

Each story draws from its own random stream, seeded by the run's seed and the story's key,
so the requests a story makes do not depend on what else ran, or in which order.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time as wall
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jingmin_sim.api import Actor, Api, Response, iso, utcnow
from jingmin_sim.geography import Bureau, Officer, Station

log = logging.getLogger(__name__)


class StoryStop(Exception):
    """A step failed in a way the story cannot go on from (already counted as an error)."""


@dataclass
class Options:
    seed: str
    start: datetime
    end: datetime
    live: bool = False
    rate: float = 1.0
    concurrency: int = 16
    discover_timeout: float = 60.0
    poll_interval: float = 0.5
    progress: bool = True
    # A drill (the chaos load): every callback is answered, with a fixed mix of answers,
    # and what follows a resolution (the callback, a recovery order's report, the follow-up
    # call) comes minutes later, up to the present, instead of hours or days later in
    # office hours. Nothing then depends on the hour the run starts.
    drill: bool = False
    # Streams to simulate; everything by default.
    include: frozenset[str] = frozenset(
        {"cases", "callbacks", "complaints", "supervision", "visits", "engagements", "surveys"}
    )


StoryFn = Callable[["Story"], Awaitable[None]]


@dataclass(order=True)
class Start:
    """A story to run: when it begins and what it is."""

    at: datetime
    key: str
    fn: StoryFn = field(compare=False)
    generation: int = field(default=0, compare=False)


class Story:
    """One thread of events (a case, a callback, a visit): its clock, random draws, requests."""

    def __init__(self, run: Run, key: str, generation: int) -> None:
        self.run = run
        self.key = key
        self.generation = generation
        self.rng = random.Random(f"{run.options.seed}:{key}")
        self.seq = 0
        self.last: datetime | None = None

    @property
    def api(self) -> Api:
        return self.run.api

    def tally(self, name: str, n: int = 1) -> None:
        self.run.tallies[name] += n

    async def at(self, t: datetime, *, soon: bool = False) -> bool:
        """Wait for simulated time `t`; False when it lies beyond the window (stop here).

        `soon`: `t` was placed by `Run.soon` (a drill's step), which may pass the window.
        """
        return await self.run.reach(t, soon=soon)

    def name(self, server_id: str, label: str) -> None:
        """Remember what this story calls a server-assigned id (for the request log)."""
        self.api.log.name(server_id, label)

    async def post(
        self,
        service: str,
        template: str,
        ids: dict[str, str],
        body: dict[str, Any],
        actor: Actor,
        t: datetime | None = None,
        *,
        expect: tuple[int, ...] = (),
    ) -> Response:
        """POST `body` (with occurred_at = `t`); a failure outside `expect` ends the story."""
        self.seq += 1
        if t is not None:
            if self.last is not None and t < self.last:
                t = self.last  # event time never runs backwards within a story
            body = {**body, "occurred_at": iso(t)}
            self.last = t
        response = await self.api.request(
            service,
            "POST",
            template.format(**ids),
            actor,
            endpoint=template,
            story=self.key,
            seq=self.seq,
            json_body=body,
            expect=expect,
        )
        if not response.ok and response.status not in expect:
            raise StoryStop(f"{template}: {response.status}")
        return response

    async def form(
        self, service: str, template: str, ids: dict[str, str], form: dict[str, str], actor: Actor
    ) -> Response:
        self.seq += 1
        return await self.api.request(
            service,
            "POST",
            template.format(**ids),
            actor,
            endpoint=template,
            story=self.key,
            seq=self.seq,
            form=form,
            expect=(410, 404, 422),
        )

    async def upload(
        self,
        service: str,
        template: str,
        ids: dict[str, str],
        media_type: str,
        content: bytes,
        actor: Actor,
        params: str = "",
    ) -> Response:
        """POST a file (a survey frame's CSV); a failure ends the story. `params` is the
        query string, kept in the logged path (a part number says which piece it is)."""
        self.seq += 1
        response = await self.api.request(
            service,
            "POST",
            template.format(**ids) + params,
            actor,
            endpoint=template,
            story=self.key,
            seq=self.seq,
            content=(media_type, content),
        )
        if not response.ok:
            raise StoryStop(f"{template}: {response.status}")
        return response

    async def get(
        self,
        service: str,
        template: str,
        ids: dict[str, str],
        actor: Actor,
        params: dict[str, str] | None = None,
        *,
        expect: tuple[int, ...] = (404,),
    ) -> Response:
        return await self.api.request(
            service,
            "GET",
            template.format(**ids),
            actor,
            endpoint=template,
            params=params,
            expect=expect,
        )

    async def discover(
        self,
        service: str,
        template: str,
        ids: dict[str, str],
        actor: Actor,
        found: Callable[[Any], Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Poll a GET until what another service's consumer creates is there (or time out).

        `found` picks the wanted item out of the body; None means "not yet".
        """
        deadline = wall.monotonic() + self.run.options.discover_timeout
        delay = self.run.options.poll_interval
        while True:
            response = await self.get(service, template, ids, actor, params)
            if response.ok:
                item = found(response.body) if found else response.body
                if item:
                    return item
            elif response.status not in (404,):
                return None
            if wall.monotonic() > deadline:
                self.tally(f"discover.timeout.{template}")
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    def spawn(self, key: str, at: datetime, fn: StoryFn) -> None:
        """Start a follow-up story (the next generation in backfill)."""
        self.run.spawn(Start(at, key, fn, self.generation + 1))

    # ---- actors ---------------------------------------------------------------------------

    def officer(self, station: Station, rank: str | None = None) -> Officer:
        pool = [o for o in station.officers if rank is None or o.rank == rank]
        return self.rng.choice(pool or list(station.officers))

    @staticmethod
    def as_officer(station: Station, officer: Officer) -> Actor:
        return Actor("officer", officer.officer_id, station.code)

    @staticmethod
    def as_clerk(station: Station, officer: Officer) -> Actor:
        return Actor("intake_operator", officer.officer_id, station.code)

    def as_call_taker(self, bureau: Bureau) -> Actor:
        return Actor("intake_operator", self.rng.choice(bureau.call_takers), bureau.code)

    def as_supervisor(self, bureau: Bureau) -> Actor:
        return Actor("supervisor", self.rng.choice(bureau.supervisors), bureau.code)


class Run:
    """One simulation run over a set of bureaus."""

    def __init__(self, api: Api, bureaus: list[Bureau], options: Options) -> None:
        self.api = api
        self.bureaus = {b.code: b for b in bureaus}
        self.stations = {s.code: s for b in bureaus for s in b.stations}
        self.options = options
        self.tallies: Counter[str] = Counter()
        self.next_generation: list[Start] = []
        self.live_tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        self.finished = 0
        self.stopped = 0
        self.failed = 0
        self.cut = 0
        self._bar: Any = None
        # The dev SMS sink (citizens answering survey links), when running against `make dev`.
        self.sms_sink: Any = None
        self._wall_start = wall.monotonic()
        self._t0 = utcnow()
        # Once set, no new arriving story starts; follow-ups of those begun still run.
        self.stop_arrivals: asyncio.Event | None = None

    # ---- time -------------------------------------------------------------------------------

    def horizon(self, *, soon: bool = False) -> datetime:
        """The latest event time a story may reach: the window's end, or in a drill, for a
        step `Run.soon` placed (a callback, a recovery order's report and close), the
        present: what follows a resolution near the end, or an answer on the SMS page
        (recorded when it is posted), still runs."""
        if soon and self.options.drill and not self.options.live:
            return max(self.options.end, utcnow())
        return self.options.end

    def soon(self, after: datetime, rng: random.Random) -> datetime:
        """A drill's next step: a minute or two after `after`, never in the future."""
        t = after + timedelta(seconds=rng.uniform(30, 150))
        return t if t <= utcnow() else max(after, utcnow().replace(microsecond=0))

    async def reach(self, t: datetime, *, soon: bool = False) -> bool:
        """Wait for `t` (live); False when it lies beyond the horizon (stop here)."""
        if t > self.horizon(soon=soon):
            return False
        if self.options.live:
            delay = (t - utcnow()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
        return True

    # ---- stories ----------------------------------------------------------------------------

    def spawn(self, start: Start) -> None:
        # A follow-up starts when what it follows happened: beyond the window's end only
        # after a drill's step (the only event times past it).
        if start.at > self.horizon(soon=True):
            self.cut += 1
            return
        if self.options.live:
            self._launch_live(start)
        else:
            self.next_generation.append(start)

    async def _play(self, start: Start) -> None:
        story = Story(self, start.key, start.generation)
        self.started += 1
        try:
            if await self.reach(start.at):
                await start.fn(story)
        except StoryStop:
            self.stopped += 1
        except Exception:  # one broken story must not end the run; it is counted and logged
            self.failed += 1
            log.exception("story %s failed", start.key)
        finally:
            self.finished += 1
            if self._bar is not None and not self.options.live:
                self._bar.update(1)

    def _launch_live(self, start: Start) -> None:
        task = asyncio.create_task(self._play(start))
        self.live_tasks.add(task)
        task.add_done_callback(self.live_tasks.discard)

    async def _run_batch(self, starts: list[Start]) -> None:
        """Backfill: the stories in time order, at most `concurrency` at once."""
        starts.sort()
        slots = asyncio.Semaphore(self.options.concurrency)

        async def one(start: Start) -> None:
            try:
                await self._play(start)
            finally:
                slots.release()

        tasks = []
        for start in starts:
            await slots.acquire()
            if start.generation == 0 and self.stop_arrivals and self.stop_arrivals.is_set():
                slots.release()
                break
            tasks.append(asyncio.create_task(one(start)))
        await asyncio.gather(*tasks)

    async def execute(self, arrivals: Iterator[Start], total: int | None = None) -> None:
        from tqdm import tqdm

        if self.options.live:
            span = (self.options.end - self.options.start).total_seconds()
            with tqdm(
                total=int(span), unit="s", desc="simulated", disable=not self.options.progress
            ) as bar:
                self._bar = bar
                ticker = asyncio.create_task(self._tick(bar))
                try:
                    for start in arrivals:
                        if not await self.reach(start.at):
                            break
                        self._launch_live(start)
                    while self.live_tasks:
                        await asyncio.gather(*list(self.live_tasks))
                finally:
                    ticker.cancel()
            return
        first = list(arrivals)
        with tqdm(
            total=len(first), unit="story", desc="stories", disable=not self.options.progress
        ) as bar:
            self._bar = bar
            batch, generation = first, 0
            while batch:
                bar.set_description(f"generation {generation}")
                await self._run_batch(batch)
                batch, self.next_generation = self.next_generation, []
                bar.total = (bar.total or 0) + len(batch)
                bar.refresh()
                generation += 1

    async def _tick(self, bar: Any) -> None:
        last = 0
        while True:
            await asyncio.sleep(1.0)
            done = int(min(self.options.end, utcnow()).timestamp() - self.options.start.timestamp())
            bar.update(max(0, done - last))
            last = max(last, done)
            bar.set_postfix(requests=self.api.stats.requests, errors=self.api.stats.error_count)


def merge(*streams: Iterator[Start]) -> Iterator[Start]:
    """Several time-ordered streams of stories as one."""
    return heapq.merge(*streams)


def window_days(start: datetime, end: datetime) -> list[datetime]:
    """Local midnights of every day touching the window."""
    from jingmin_sim.model import TZ

    day = start.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day <= end:
        days.append(day)
        day = (day + timedelta(days=1, hours=3)).replace(hour=0)  # DST-proof stepping
    return days
