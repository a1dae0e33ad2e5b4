"""A `field` case for each issue a citizen raised during a visit: exactly one per issue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from eventkit.personal import Vault, subject_ref
from eventkit.policies import BureauPolicies
from eventkit.settings import KernelSettings
from eventkit.store import PostgresTransaction

from jingmin_intake.adapters import read_model
from jingmin_intake.application.handlers import STREAM_TYPE, event_for, seal_for_subject
from jingmin_intake.domain.case import Case
from jingmin_intake.domain.policy import DeadlinePolicy
from jingmin_intake.domain.vocabulary import Branch, Channel, Kind, Priority
from jingmin_intake.integration.inbound import IssueRaised
from jingmin_intake.integration.messages import to_messages


class IssueCollision(Exception):
    """A case with the issue's id exists but was not opened for this issue.

    Issue ids are random 128-bit values, so this means a producer bug, not bad luck: the
    message goes to the dead-letter topic rather than being silently taken as a duplicate.
    """


async def open_field_case(
    conn: asyncpg.Connection,
    issue: IssueRaised,
    *,
    vault: Vault,
    settings: KernelSettings,
    policies: BureauPolicies[DeadlinePolicy],
    metadata: Mapping[str, Any],
    now: datetime,
) -> bool:
    """Open the case for `issue` in the caller's transaction; False if it already exists.

    The case id *is* the issue id and the receipt is appended at stream version 0. However
    often the issue is delivered, and by however many consumers (a replay, a second group, a
    re-emitted message with a new ce_id), one case exists: a later writer finds the stream
    and does nothing, and a concurrent one loses the insert (ConcurrencyConflict; the
    consumer retries in a new transaction, which then finds the stream).
    """
    case_id = issue.issue_id
    tx = PostgresTransaction(conn)
    history = await tx.load(case_id)
    if history:
        if history[0].data.get("source_ref") != issue.source_ref:
            raise IssueCollision(f"case {case_id} exists but was not opened for this issue")
        return False
    t = issue.occurred_at
    policy = await policies.get(conn, issue.bureau)
    priority = Priority.URGENT if issue.kind == Kind.ALARM else Priority.GENERAL
    due = policy.on_receipt(issue.kind, Channel.FIELD, priority, t)
    # The same person reference visits holds, when it knows the person; else a fresh one.
    subject_id, sealed = await seal_for_subject(
        vault,
        settings,
        conn,
        issue.subject_id or subject_ref({}, settings),
        {"demand": issue.demand},
    )
    branch = issue.branch or Branch.OTHER
    data: dict[str, Any] = {
        "bureau": issue.bureau,
        "station": issue.station,
        "channel": Channel.FIELD,
        "kind": issue.kind,
        "priority": priority,
        "area_type": issue.area_type,
        "branch": branch,
        "category": issue.category,
        "subject_id": subject_id,
        "source_ref": issue.source_ref,
        # The visiting officer took the issue in (not published: officer ids stay inside).
        "received_by": issue.raised_by,
        "programme": issue.programme,
        **sealed,
    }
    case = Case(case_id)
    facts = case.receive({k: v for k, v in data.items() if v is not None}, due, t, now)
    for fact in facts:
        case.apply(fact)
    await tx.append(
        case_id, STREAM_TYPE, 0, [event_for(case, f, metadata) for f in facts], publish=to_messages
    )
    await read_model.project(conn, case, branch, now, issue.source_ref)
    return True
