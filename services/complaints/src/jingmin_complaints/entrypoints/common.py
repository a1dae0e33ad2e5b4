"""What the API routes share: running a command from a request, the per-item command edge."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import asyncpg
from eventkit.app import vault_of
from eventkit.auth import Principal
from eventkit.commands import answer, command_request, command_route
from eventkit.personal import SubjectErased, Vault
from eventkit.problems import Problem
from eventkit.schemas import plausible
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from jingmin_complaints.application.handlers import A, Commands, Decision
from jingmin_complaints.domain.common import Fact
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.entrypoints import schemas as s

ItemIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Item id")]


def commands_of(request: Request) -> Commands:
    commands: Commands = request.app.state.commands
    return commands


async def run(
    request: Request,
    principal: Principal,
    key: str | None,
    kind: type[A],
    stream_id: str,
    decide: Decision[A],
    *,
    roles: Sequence[str],
    location: str,
    expected_version: int | None = None,
    new_in: str | None = None,
    status: int = 200,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    command = await command_request(request, principal, key)
    code, body = await commands_of(request).execute(
        command,
        kind,
        stream_id,
        decide,
        roles=roles,
        new_in=new_in,
        expected_version=expected_version,
        status=status,
        extra=extra,
    )
    return answer(code, body, f"{location}/{stream_id}")


async def seal(
    vault: Vault, conn: asyncpg.Connection, subject_id: str | None, fields: Mapping[str, str | None]
) -> dict[str, Any]:
    """Free text encrypted under the person it concerns; dropped if they were erased."""
    present = {k: v for k, v in fields.items() if v}
    if not present or subject_id is None:
        return {}
    try:
        return dict(await vault.encrypt_fields(conn, subject_id, present))
    except SubjectErased:
        # The person asked to be forgotten: the fact is still recorded, their words are not.
        return {}


T = TypeVar("T")


@dataclass(frozen=True)
class Step(Generic[T]):
    """What a command's decision sees: the item, its policy, the write transaction, when."""

    item: T
    policy: ComplaintPolicy
    conn: asyncpg.Connection
    request: Request
    principal: Principal
    at: datetime  # when it happened: the body's occurred_at, else now
    now: datetime

    async def seal(self, **fields: str | None) -> dict[str, Any]:
        """Free-text fields encrypted under the complaint's complainant."""
        subject = getattr(self.item, "subject_id", None)
        return await seal(vault_of(self.request), self.conn, subject, fields)


ItemDecision = TypeVar("ItemDecision", bound=Callable[..., Awaitable[list[Fact]]])


def item_command(
    router: APIRouter,
    kind: type[Any],
    collection: str,
    path: str,
    body_type: type[s.Command],
    roles: Sequence[str],
) -> Callable[[ItemDecision], ItemDecision]:
    """Register `POST <collection>/{id}/<path>`; the decorated function decides the facts.

    Every command shares the edge: token, Idempotency-Key, expected_version, occurred_at.
    Only the decision differs, so that is all each command spells out.
    """
    location = router.prefix + collection
    id_name: str = kind.ID_FIELD  # the path names what it is: {complaint_id}, {order_id}

    def register(decide: ItemDecision) -> ItemDecision:
        async def run_decision(
            item_id: str, body: Any, request: Request, principal: Principal, key: str | None
        ) -> JSONResponse:
            async def bound(
                item: Any, policy: ComplaintPolicy, conn: asyncpg.Connection, now: datetime
            ) -> list[Fact]:
                at = body.occurred_at or now
                step: Step[Any] = Step(item, policy, conn, request, principal, at, now)
                facts: list[Fact] = await decide(body, step)
                return facts

            return await run(
                request,
                principal,
                key,
                kind,
                item_id,
                bound,
                roles=roles,
                location=location,
                expected_version=body.expected_version,
            )

        command_route(
            router,
            f"{collection}/{{{id_name}}}/{path}",
            id_name,
            ItemIdPath,
            body_type,
            decide,
            run_decision,
            response_model=s.Accepted,
            response_model_exclude_none=True,
            responses={403: {}, 404: {}, 409: {}, 422: {}},
        )
        return decide

    return register


def cursor(stamp: datetime, item_id: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp.isoformat()}|{item_id}".encode()).decode()


def parse_cursor(value: str | None) -> tuple[datetime, str] | None:
    if value is None:
        return None
    try:
        stamp, item_id = base64.urlsafe_b64decode(value.encode()).decode().split("|")
        return plausible(datetime.fromisoformat(stamp)), item_id
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise Problem(
            400,
            "Bad cursor",
            "the cursor is not one this API issued",
            type_="urn:jingmin:problem:bad-cursor",
        ) from exc


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
