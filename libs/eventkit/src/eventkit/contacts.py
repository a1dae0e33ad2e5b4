"""Internal contact API: a service that holds people's contact details lends them, audited.

Topics never carry names or phone numbers. A service that must reach a person (a callback,
a survey SMS, a reply to a complaint) asks the service that owns the person's details, at
the moment it needs them, through `GET /internal/v1/contacts/{item_id}?purpose=...`. The
owner decrypts with its Vault and records every attempt, granted or refused, in its
`contact_reads` table (kernel migration 0005); supervisors list them at
`GET /v1/contact-reads`.

Owner side: `contact_router(lookup)` builds both routes from one function that finds an
item's unit, subject and encrypted name/phone. Caller side: `ContactClient` fetches one
contact with retries and turns 404/410 into exceptions a worker can act on.
"""

from __future__ import annotations

import base64
import inspect
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import httpx
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from eventkit.auth import ROLES, Principal, current_principal, issue_token
from eventkit.http import JSONUTF8Response
from eventkit.personal import PersonalDataError, Vault, is_personal_blob
from eventkit.problems import Problem, forbidden, not_found, unprocessable
from eventkit.schemas import Time
from eventkit.settings import KernelSettings
from eventkit.telemetry import current_traceparent

__all__ = [
    "CONTACT_PURPOSES",
    "Contact",
    "ContactClient",
    "ContactClientSettings",
    "ContactErased",
    "ContactError",
    "ContactLookup",
    "ContactNotFound",
    "ContactRead",
    "ContactReadPage",
    "ContactRefused",
    "ContactSource",
    "ContactUnavailable",
    "ReadResult",
    "contact_router",
    "owner_base_url",
    "service_token_source",
]

# Why a caller may read a contact, as agreed between the services (contracts.md). A purpose
# outside this list is refused: "just looking" is not a reason to see a phone number.
CONTACT_PURPOSES: tuple[str, ...] = ("callback", "survey", "complaint_reply", "recovery_followup")
READ_ROLES: tuple[str, ...] = ("service", "admin")
AUDIT_ROLES: tuple[str, ...] = ("supervisor", "admin")
ITEM_PATTERN = r"^[0-9a-f]{32}$"
CONTACTS_PATH = "/internal/v1/contacts/{item_id}"
READS_PATH = "/v1/contact-reads"

_CORRELATION = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


# Module-level so FastAPI can resolve it (the routes are defined inside contact_router).
PurposeParam = Annotated[
    str | None, Query(description="Why it is read: one of " + ", ".join(CONTACT_PURPOSES))
]


class ReadResult(StrEnum):
    """What became of one read attempt (the `result` column of contact_reads)."""

    GRANTED = "granted"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    INVALID_PURPOSE = "invalid_purpose"
    INVALID_ITEM = "invalid_item"
    NOT_FOUND = "not_found"
    OUT_OF_SCOPE = "out_of_scope"
    ERASED = "erased"
    ERROR = "error"


# --- owner side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactSource:
    """What the owning service knows about an item's person, still encrypted.

    `name` and `phone` are personal-data blobs as `Vault.encrypt` made them (or None when
    the item has no such field). `station` is the item's unit: the caller's token must cover it.
    """

    station: str
    subject_id: str | None
    name: Mapping[str, Any] | None = None
    phone: Mapping[str, Any] | None = None


# Finds one item on the given connection; None when the service has no such item.
ContactLookup = Callable[[asyncpg.Connection, str], Awaitable[ContactSource | None]]


class ContactOut(BaseModel):
    item_id: str
    subject_id: str | None
    name: str | None
    phone: str | None


class ContactRead(BaseModel):
    """One recorded read attempt, as supervisors see it."""

    read_id: int
    read_at: datetime
    reader: str | None
    roles: list[str]
    scopes: list[str]
    purpose: str | None
    item_id: str | None
    subject_id: str | None
    station: str | None
    result: ReadResult
    status: int
    correlation_id: str | None
    traceparent: str | None


class ContactReadPage(BaseModel):
    items: list[ContactRead]
    next_cursor: str | None = None


_REFUSED_EARLY = frozenset(
    {ReadResult.UNAUTHENTICATED, ReadResult.FORBIDDEN, ReadResult.INVALID_PURPOSE}
)


def _gone(item_id: str) -> Problem:
    return Problem(
        410,
        "Gone",
        f"the person behind {item_id} asked to be forgotten; their contact no longer exists",
        type_="urn:jingmin:problem:erased",
    )


@dataclass
class _Attempt:
    """What one request has established so far; recorded whatever the outcome."""

    item_id: str | None
    purpose: str | None
    correlation_id: str | None
    principal: Principal | None = None
    subject_id: str | None = None
    station: str | None = None


async def _record(
    conn: asyncpg.Connection, attempt: _Attempt, result: ReadResult, status: int
) -> None:
    # Autocommit, not inside any transaction of the request: a refusal is recorded even
    # though the request fails, and a grant is recorded before any data leaves.
    p = attempt.principal
    await conn.execute(
        """INSERT INTO contact_reads (reader, roles, scopes, purpose, item_id, subject_id,
               station, result, status, correlation_id, traceparent)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        p.subject if p else None,
        sorted(p.roles) if p else [],
        list(p.scopes) if p else [],
        attempt.purpose,
        attempt.item_id,
        attempt.subject_id,
        attempt.station,
        result.value,
        status,
        attempt.correlation_id,
        current_traceparent(),
    )


def _correlation(request: Request) -> str | None:
    value = request.headers.get("x-correlation-id")
    # Stored and shown to supervisors, so only a well-formed id; a bad one is not a reason
    # to refuse a read, it is just not kept.
    return value if value is not None and _CORRELATION.fullmatch(value) else None


async def _reveal(
    vault: Vault, conn: asyncpg.Connection, item_id: str, source: ContactSource
) -> dict[str, str | None]:
    blobs = {"name": source.name, "phone": source.phone}
    subjects = {source.subject_id} if source.subject_id else set()
    for blob in blobs.values():
        if blob is not None:
            if not is_personal_blob(blob):
                raise PersonalDataError("a contact field is not a personal-data blob")
            subjects.add(blob["sub"])
    # Asked of the database every time, not the vault's key cache: an erasure made by
    # another process must answer 410 at once.
    for subject in sorted(subjects):
        if await vault.is_erased(conn, subject):
            raise _gone(item_id)
    revealed: dict[str, str | None] = {}
    for name, blob in blobs.items():
        value = None if blob is None else await vault.decrypt(conn, blob)
        if blob is not None and value is None:
            # The key is gone though no erasure was recorded: shredded all the same.
            raise _gone(item_id)
        revealed[name] = value
    return revealed


def _encode_cursor(read_id: int) -> str:
    return base64.urlsafe_b64encode(f"r{read_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not raw.startswith("r") or not raw[1:].isascii() or not raw[1:].isdigit():
            raise ValueError(cursor)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400,
            "Bad cursor",
            "the cursor is not one this API issued",
            type_="urn:jingmin:problem:bad-cursor",
        ) from exc


def contact_router(
    lookup: ContactLookup,
    *,
    item_pattern: str = ITEM_PATTERN,
    purposes: Iterable[str] = CONTACT_PURPOSES,
    read_roles: Iterable[str] = READ_ROLES,
    audit_roles: Iterable[str] = AUDIT_ROLES,
    noun: str = "item",
) -> APIRouter:
    """The internal contact API and its audit listing, for a service to `include_router`.

    - `GET /internal/v1/contacts/{item_id}?purpose=P`: role in `read_roles`, scope covering
      the item's station. 200 {item_id, subject_id, name, phone}; 401/403 for the token;
      422 for a malformed id or a purpose not in `purposes`; 404 when the item is unknown
      *or* outside the caller's scope (the answer does not reveal which); 410 when the
      person was erased. Every attempt is one row in `contact_reads`.
    - `GET /v1/contact-reads?item_id=&reader=&result=&since=&limit=&cursor=`: roles in
      `audit_roles`; rows of items in the caller's scope, newest first.

    Uses `app.state.pool`, `app.state.vault` and `app.state.verifier` (as `service_app`
    sets them). `lookup(conn, item_id)` finds the item.
    """
    allowed = tuple(dict.fromkeys(purposes))
    readers = frozenset(read_roles)
    auditors = frozenset(audit_roles)
    for roles in (readers, auditors):
        if not roles or roles - ROLES:
            raise ValueError(f"unknown or no roles: {sorted(roles)}")
    item_re = re.compile(item_pattern)
    router = APIRouter()

    @router.get(
        CONTACTS_PATH,
        response_model=ContactOut,
        tags=["internal"],
        summary=f"Contact of the person behind one {noun} (audited)",
        responses={401: {}, 403: {}, 404: {}, 410: {}, 422: {}},
    )
    async def read_contact(
        item_id: str,
        request: Request,
        purpose: PurposeParam = None,
    ) -> JSONUTF8Response:
        attempt = _Attempt(
            item_id=item_id if item_re.fullmatch(item_id) else None,
            purpose=purpose if purpose in allowed else None,
            correlation_id=_correlation(request),
        )
        async with request.app.state.pool.acquire() as conn:
            try:
                body = await _serve(request, conn, lookup, attempt, item_id, purpose)
            except Problem as problem:
                result = _result_of(problem, attempt)
                if result in _REFUSED_EARLY and attempt.item_id is not None:
                    # Refused before the item was looked at: find its unit anyway, so the
                    # supervisors of that unit see who knocked (the caller learns nothing).
                    source = await lookup(conn, attempt.item_id)
                    if source is not None:
                        attempt.station, attempt.subject_id = source.station, source.subject_id
                await _record(conn, attempt, result, problem.status)
                raise
            except Exception:
                await _record(conn, attempt, ReadResult.ERROR, 500)
                raise
            await _record(conn, attempt, ReadResult.GRANTED, 200)
        # The body is a person's contact: no proxy or client cache should keep it.
        return JSONUTF8Response(body, headers={"Cache-Control": "no-store"})

    async def _serve(
        request: Request,
        conn: asyncpg.Connection,
        find: ContactLookup,
        attempt: _Attempt,
        item_id: str,
        purpose: str | None,
    ) -> dict[str, Any]:
        principal = await current_principal(request)
        attempt.principal = principal
        if not principal.has_role(*readers):
            raise forbidden(f"requires one of the roles {sorted(readers)}")
        if attempt.item_id is None:
            raise unprocessable(f"{item_id!r} is not a {noun} id")
        if attempt.purpose is None:
            raise unprocessable(
                "purpose is required" if purpose is None else f"unknown purpose {purpose!r}",
                allowed=list(allowed),
            )
        source = await find(conn, item_id)
        if source is None:
            raise not_found(f"no {noun} {item_id} in your scope")
        attempt.station = source.station
        attempt.subject_id = source.subject_id
        if not principal.covers(source.station):
            # Same answer as an unknown id: a token cannot probe which ids exist elsewhere.
            raise not_found(f"no {noun} {item_id} in your scope")
        revealed = await _reveal(request.app.state.vault, conn, item_id, source)
        return {"item_id": item_id, "subject_id": source.subject_id, **revealed}

    def _result_of(problem: Problem, attempt: _Attempt) -> ReadResult:
        if problem.status == 401:
            return ReadResult.UNAUTHENTICATED
        if problem.status == 403:
            return ReadResult.FORBIDDEN
        if problem.status == 422:
            return (
                ReadResult.INVALID_ITEM if attempt.item_id is None else ReadResult.INVALID_PURPOSE
            )
        if problem.status == 404:
            return ReadResult.NOT_FOUND if attempt.station is None else ReadResult.OUT_OF_SCOPE
        if problem.status == 410:
            return ReadResult.ERASED
        return ReadResult.ERROR

    @router.get(READS_PATH, response_model=ContactReadPage, tags=["audit"])
    async def list_contact_reads(
        request: Request,
        item_id: Annotated[str | None, Query(description="Only reads of this item")] = None,
        reader: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        result: ReadResult | None = None,
        since: Time | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: str | None = None,
    ) -> ContactReadPage:
        """Who read which contact, when and why, newest first; only items in your scope.

        Admins also see attempts that named no known item, when the reader's token was
        scoped inside theirs (someone probing ids is worth seeing).
        """
        principal = await current_principal(request)
        if not principal.has_role(*auditors):
            raise forbidden(f"requires one of the roles {sorted(auditors)}")
        if item_id is not None and not item_re.fullmatch(item_id):
            raise unprocessable(f"{item_id!r} is not a {noun} id")
        before = _decode_cursor(cursor) if cursor else None
        rows = await request.app.state.pool.fetch(
            """SELECT read_id, read_at, reader, roles, scopes, purpose, item_id, subject_id,
                      station, result, status, correlation_id, traceparent
               FROM contact_reads
               WHERE (station LIKE ANY ($1::text[])
                      OR ($2 AND station IS NULL AND EXISTS (
                          SELECT 1 FROM unnest(scopes) s WHERE s LIKE ANY ($1::text[]))))
                 AND ($3::text IS NULL OR item_id = $3)
                 AND ($4::text IS NULL OR reader = $4)
                 AND ($5::text IS NULL OR result = $5)
                 AND ($6::timestamptz IS NULL OR read_at >= $6)
                 AND ($7::bigint IS NULL OR read_id < $7)
               ORDER BY read_id DESC LIMIT $8""",
            principal.like_patterns(),
            principal.has_role("admin"),
            item_id,
            reader,
            result.value if result else None,
            since,
            before,
            limit,
        )
        items = [ContactRead(**dict(r)) for r in rows]
        nxt = _encode_cursor(items[-1].read_id) if len(items) == limit else None
        return ContactReadPage(items=items, next_cursor=nxt)

    return router


# --- caller side --------------------------------------------------------------------------


class ContactClientSettings(BaseSettings):
    """How a service reaches another's contact API (environment variables, case-insensitive).

    SERVICE_TOKEN: a bearer token with role `service` (production: issued by the identity
    provider). SERVICE_TOKEN_FILE: a file holding one, re-read on each request so a rotated
    secret is picked up. Without either, a dev token is minted with the local dev key, which
    only works where the services verify dev tokens (no JWT_JWKS_URL).
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    service_token: SecretStr | None = None
    service_token_file: Path | None = None
    contact_timeout_seconds: float = 5.0
    contact_attempts: int = 4


def owner_base_url(owner: str) -> str:
    """Where service `owner` answers: `<OWNER>_URL` (e.g. INTAKE_URL), else
    http://127.0.0.1:<OWNER>_PORT or the port its installed ServiceSpec declares."""
    prefix = owner.upper().replace("-", "_")
    explicit = os.environ.get(f"{prefix}_URL")
    if explicit:
        return explicit.rstrip("/")
    port = os.environ.get(f"{prefix}_PORT")
    if port is None:
        # Only the named entry point is loaded: another service that fails to import must
        # not stop this one from finding its peer.
        found = [ep for ep in entry_points(group="jingmin.services") if ep.name == owner]
        if not found:
            raise LookupError(f"no service {owner!r} installed; set {prefix}_URL")
        port = str(found[0].load().default_port)
    return f"http://127.0.0.1:{int(port)}"


TokenSource = Callable[[], str | Awaitable[str]]


def service_token_source(
    settings: KernelSettings,
    *,
    subject: str,
    scopes: Sequence[str],
    client_settings: ContactClientSettings | None = None,
) -> Callable[[], str]:
    """A callable giving the bearer token for each request (see ContactClientSettings).

    `subject` names the calling service in the owner's audit (e.g. "svc:visits"); `scopes`
    are the administrative codes it may read in. Dev tokens last an hour and are renewed
    five minutes before they expire.
    """
    config = client_settings or ContactClientSettings()
    if config.service_token is not None:
        static = config.service_token.get_secret_value().strip()
        return lambda: static
    if config.service_token_file is not None:
        path = config.service_token_file
        return lambda: path.read_text(encoding="utf-8").strip()
    if settings.jwt_jwks_url:
        raise ValueError(
            "tokens are verified against JWT_JWKS_URL: set SERVICE_TOKEN or SERVICE_TOKEN_FILE"
        )
    ttl = timedelta(hours=1)
    cached: list[tuple[datetime, str]] = []

    def dev() -> str:
        now = datetime.now().astimezone()
        if not cached or cached[0][0] - now < timedelta(minutes=5):
            token = issue_token(
                settings, subject=subject, roles=["service"], scopes=scopes, ttl=ttl
            )
            cached[:] = [(now + ttl, token)]
        return cached[0][1]

    return dev


@dataclass(frozen=True)
class Contact:
    """A person's contact as the owner lent it; never log it (repr hides name and phone)."""

    item_id: str
    subject_id: str | None
    name: str | None = field(repr=False)
    phone: str | None = field(repr=False)


class ContactError(Exception):
    """The contact could not be had; `status` is the owner's HTTP status, if it answered."""

    def __init__(self, message: str, *, item_id: str, status: int | None = None) -> None:
        super().__init__(message)
        self.item_id = item_id
        self.status = status


class ContactNotFound(ContactError):
    """404: the owner has no such item, or not in the caller's scope (it does not say which)."""


class ContactErased(ContactError):
    """410: the person was erased; do not try again, and record that they cannot be reached."""


class ContactRefused(ContactError):
    """401/403/422 and other 4xx: the token, its scope or the request is wrong; retrying the
    same request will not help."""


class ContactUnavailable(ContactError):
    """The owner did not answer usefully (connection errors, 5xx) within the attempts: try
    again later."""


class _Busy(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


_RETRY_STATUS = frozenset({500, 502, 503, 504})


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    return response.reason_phrase or f"HTTP {response.status_code}"


class ContactClient:
    """Fetches contacts from one owning service's internal API.

    Connection errors, timeouts and 5xx answers are retried (`attempts` in all, exponential
    backoff with jitter): a read is safe to repeat, each attempt is simply audited. The
    token callable is asked on every attempt, so a renewed token is used at once.
    """

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        timeout: float = 5.0,
        attempts: int = 4,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )

    @classmethod
    def for_owner(
        cls,
        owner: str,
        settings: KernelSettings,
        *,
        subject: str,
        scopes: Sequence[str],
        client_settings: ContactClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> ContactClient:
        """A client for service `owner` configured from the environment (see
        `owner_base_url` and `ContactClientSettings`)."""
        config = client_settings or ContactClientSettings()
        return cls(
            owner_base_url(owner),
            service_token_source(settings, subject=subject, scopes=scopes, client_settings=config),
            timeout=config.contact_timeout_seconds,
            attempts=config.contact_attempts,
            transport=transport,
        )

    async def __aenter__(self) -> ContactClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _bearer(self) -> str:
        token = self._token()
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    async def _get_once(
        self, item_id: str, purpose: str, correlation_id: str | None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self._bearer()}", "Accept": "application/json"}
        if correlation_id:
            headers["X-Correlation-Id"] = correlation_id
        traceparent = current_traceparent()
        if traceparent and _TRACEPARENT.fullmatch(traceparent):
            # The owner's audit row and spans then join the caller's trace.
            headers["traceparent"] = traceparent
        response = await self._http.get(
            CONTACTS_PATH.format(item_id=item_id), params={"purpose": purpose}, headers=headers
        )
        if response.status_code in _RETRY_STATUS:
            raise _Busy(response)
        return response

    async def fetch(
        self, item_id: str, purpose: str, *, correlation_id: str | None = None
    ) -> Contact:
        """The contact behind `item_id`, read for `purpose` (one of CONTACT_PURPOSES).

        Raises ContactNotFound (404), ContactErased (410), ContactRefused (other 4xx) or
        ContactUnavailable (no useful answer after every attempt).
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=self.backoff, max=self.max_backoff),
            retry=retry_if_exception_type((httpx.TransportError, _Busy)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._get_once(item_id, purpose, correlation_id)
        except _Busy as exc:
            raise ContactUnavailable(
                f"contact of {item_id}: owner answered {exc.response.status_code} "
                f"{self.attempts} time(s)",
                item_id=item_id,
                status=exc.response.status_code,
            ) from None
        except httpx.TransportError as exc:
            raise ContactUnavailable(
                f"contact of {item_id}: {type(exc).__name__} after {self.attempts} attempt(s)",
                item_id=item_id,
            ) from exc
        return self._contact(item_id, response)

    @staticmethod
    def _contact(item_id: str, response: httpx.Response) -> Contact:
        status = response.status_code
        if status == 200:
            try:
                body = response.json()
                return Contact(
                    item_id=str(body["item_id"]),
                    subject_id=body.get("subject_id"),
                    name=body.get("name"),
                    phone=body.get("phone"),
                )
            except (ValueError, KeyError, TypeError):
                raise ContactError(
                    f"contact of {item_id}: the owner's answer is not a contact",
                    item_id=item_id,
                    status=status,
                ) from None
        detail = f"contact of {item_id}: {_detail(response)}"
        if status == 404:
            raise ContactNotFound(detail, item_id=item_id, status=status)
        if status == 410:
            raise ContactErased(detail, item_id=item_id, status=status)
        if 400 <= status < 500:
            raise ContactRefused(detail, item_id=item_id, status=status)
        raise ContactError(detail, item_id=item_id, status=status)
