"""The simulator's only door into the platform: the services' public HTTP APIs.

Every POST carries an Idempotency-Key derived from the seed and the request's place in its
story, so a retry (connection lost, 5xx, a killed API process) and even a second run with
the same seed over the same window write nothing twice. Requests are logged with the
server's ids replaced by the story's own names, which makes two runs comparable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

# Bumped when the model changes what a story sends, so an old run's Idempotency-Keys are
# never reused for different bodies (the APIs would answer 422).
MODEL_VERSION = "1"
_HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Actor:
    """Who makes a request: the token's role, subject and scope."""

    role: str
    subject: str
    scope: str


class TokenSource(Protocol):
    def token(self, actor: Actor) -> str: ...


class DevTokens:
    """Tokens signed with the dev key (what `jingmin token` prints), one per actor."""

    def __init__(self, settings: Any, ttl: timedelta = timedelta(hours=12)) -> None:
        self.settings, self.ttl = settings, ttl
        self._cache: dict[Actor, tuple[float, str]] = {}

    def token(self, actor: Actor) -> str:
        from eventkit.auth import issue_token

        now = time.time()
        hit = self._cache.get(actor)
        if hit is not None and hit[0] - now > 600:
            return hit[1]
        value = issue_token(
            self.settings,
            subject=actor.subject,
            roles=[actor.role],
            scopes=[actor.scope],
            ttl=self.ttl,
        )
        self._cache[actor] = (now + self.ttl.total_seconds(), value)
        return value


class FileTokens:
    """Tokens from the bureau's identity provider: one per role, from a file.

    The file holds either a JSON object mapping roles (`intake_operator`, `officer`,
    `supervisor`, and optionally `admin`, which registers the simulated stations by name)
    to tokens, or a single token used for everything. Each token's scope must cover every
    bureau simulated.
    """

    def __init__(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8").strip()
        if text.startswith("{"):
            raw = json.loads(text)
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise ValueError(f"{path}: expected a JSON object of role -> token")
            self.by_role: dict[str, str] = raw
            self.default: str | None = raw.get("default")
        else:
            self.by_role, self.default = {}, text

    def token(self, actor: Actor) -> str:
        value = self.by_role.get(actor.role) or self.default
        if value is None:
            raise KeyError(f"the token file has no token for role {actor.role!r}")
        return value


@dataclass
class Response:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Retryable(Exception):
    """A 5xx, 429, 503 or a lost race (409, "retry"): the same request (same
    Idempotency-Key) is sent again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


@dataclass
class Stats:
    """Requests by endpoint and outcome, retries, and the first examples of each error."""

    by_endpoint: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, int, str], str] = field(default_factory=dict)
    transport_failures: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.by_endpoint.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + sum(self.transport_failures.values())


def _problem_title(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("title") or body.get("detail") or "")[:120]
    return ""


class RequestLog:
    """What was asked, with server ids replaced by story names: comparable across runs."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.entries: list[tuple[str, int, str, str, str]] = []

    def name(self, server_id: str, label: str) -> None:
        self.names[server_id] = label

    def logical(self, text: str) -> str:
        return _HEX32.sub(lambda m: self.names.get(m[0], "{unknown}"), text)

    def record(self, story: str, seq: int, method: str, path: str, body: Any) -> None:
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False) if body is not None else ""
        self.entries.append((story, seq, method, self.logical(path), self.logical(canonical)))

    def sorted_entries(self) -> list[tuple[str, int, str, str, str]]:
        return sorted(self.entries)

    def write(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as out:
            for story, seq, method, p, body in self.sorted_entries():
                out.write(
                    json.dumps(
                        {"story": story, "seq": seq, "method": method, "path": p, "body": body},
                        ensure_ascii=False,
                    )
                    + "\n"
                )


SERVICES = ("intake", "visits", "complaints", "metrics")


class _Unlimited:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LIMIT = _Unlimited()


class Api:
    """HTTP calls to the services, with tokens, idempotency, retries and accounting."""

    def __init__(
        self,
        clients: Mapping[str, httpx.AsyncClient],
        tokens: TokenSource,
        *,
        seed: str,
        concurrency: int = 16,
        attempts: int = 8,
        backoff: float = 0.2,
        log: RequestLog | None = None,
    ) -> None:
        self.clients = dict(clients)
        self.tokens = tokens
        self.seed = seed
        self.attempts = attempts
        self.backoff = backoff
        self.limit = asyncio.Semaphore(concurrency)
        # Detail reads (GET /v1/cases/{id}, /v1/callbacks/{id}...) decrypt and replay a whole
        # stream; a workload generator that polls for what consumers create should not let
        # them crowd out the writes it measures, so at most 6 are in flight per service.
        self.read_limits = {name: asyncio.Semaphore(min(concurrency, 6)) for name in self.clients}
        self.stats = Stats()
        self.log = log if log is not None else RequestLog()

    def has(self, service: str) -> bool:
        return service in self.clients

    def idempotency_key(self, story: str, seq: int) -> str:
        digest = hashlib.sha256(f"{self.seed}\n{story}\n{seq}".encode()).hexdigest()[:40]
        return f"sim{MODEL_VERSION}-{digest}"

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        actor: Actor,
        *,
        endpoint: str,
        story: str = "",
        seq: int = 0,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        content: tuple[str, bytes] | None = None,
        expect: tuple[int, ...] = (),
    ) -> Response:
        """One request; `endpoint` is the path template the summary groups by.

        `content`: a raw body with its media type (a CSV file); the log holds its size and
        a digest, not the file.

        Statuses in `expect` are outcomes the story handles (e.g. 404 while polling, 409
        for a callback the expiry loop closed first), not errors.
        """
        client = self.clients[service]
        headers = {"Authorization": f"Bearer {self.tokens.token(actor)}"}
        logged: Any = json_body if form is None else dict(form)
        if content is not None:
            headers["Content-Type"] = content[0]
            # 24 hex digits: a digest the log's 32-hex id naming leaves alone.
            logged = {
                content[0]: hashlib.sha256(content[1]).hexdigest()[:24],
                "bytes": len(content[1]),
            }
        if method == "POST":
            headers["Idempotency-Key"] = self.idempotency_key(story, seq)
            self.log.record(story, seq, method, path, logged)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((httpx.TransportError, Retryable)),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=self.backoff, max=15.0),
            reraise=True,
        )
        label = f"{method} {endpoint}"
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats.retries[label] += 1
                    reads = self.read_limits[service] if method == "GET" else _NO_LIMIT
                    async with reads, self.limit:
                        raw = await client.request(
                            method,
                            path,
                            json=json_body if form is None and content is None else None,
                            data=dict(form) if form is not None else None,
                            content=content[1] if content is not None else None,
                            params=params,
                            headers=headers,
                        )
                    if raw.status_code >= 500 or raw.status_code == 429 or _lost_race(raw):
                        raise Retryable(raw)
        except Retryable as exc:
            raw = exc.response
        except httpx.TransportError as exc:
            self.stats.transport_failures[f"{label}: {type(exc).__name__}"] += 1
            return Response(0, None)
        try:
            body = raw.json() if raw.content else None
        except ValueError:
            body = raw.text
        self.stats.by_endpoint[(service, label, raw.status_code)] += 1
        if not (200 <= raw.status_code < 300) and raw.status_code not in expect:
            key = (label, raw.status_code, _problem_title(body))
            self.stats.errors[key] += 1
            if key not in self.examples_seen():
                detail = body.get("detail") if isinstance(body, dict) else body
                self.stats.examples[key] = f"{self.log.logical(path)}: {str(detail)[:300]}"
        return Response(raw.status_code, body)

    def examples_seen(self) -> dict[tuple[str, int, str], str]:
        return self.stats.examples


def _lost_race(raw: httpx.Response) -> bool:
    """A 409 that wrote nothing because others kept changing the same stream (the kernel
    already retried it on fresh state): the request is to be sent again, as it says.
    Busy streams (a survey wave's fieldwork by many interviewers) see it under load."""
    if raw.status_code != 409:
        return False
    try:
        detail = raw.json().get("detail", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, str) and detail.endswith("being changed concurrently; retry")


def iso(t: datetime) -> str:
    """occurred_at as the APIs take it: local time with its offset, whole seconds."""
    from jingmin_sim.model import TZ

    return t.astimezone(TZ).replace(microsecond=0).isoformat()


def utcnow() -> datetime:
    return datetime.now(UTC)
