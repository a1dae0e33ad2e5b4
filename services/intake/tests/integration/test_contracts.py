"""Every integration event intake emits validates against its published JSON Schema.

Drives every command through the API (with optional fields both present and absent, plus a
sweeper breach), then validates each outbox row's payload against
`contracts/intake/<EventName>.v1.json` through `eventkit.contracts.SchemaRegistry`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eventkit.contracts import CONTRACTS_ENV, SchemaRegistry, SchemaViolation, dataschema_urn
from jingmin_intake.application.handlers import CaseCommands
from jingmin_intake.application.sweeper import sweep_once
from jingmin_intake.integration import hotline
from jingmin_intake.integration.messages import EVENT_TYPES, TOPIC, UNIT_TOPIC

if TYPE_CHECKING:
    from conftest import Api, Stored, TokenFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]


def contracts_dir() -> Path:
    configured = os.environ.get(CONTRACTS_ENV)
    return Path(configured) if configured else REPO / "contracts"


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    root = contracts_dir()
    if not any((root / "intake").glob("*.json")):
        pytest.skip(f"no intake schemas yet: {root / 'intake'} holds no <EventName>.v1.json")
    return SchemaRegistry.load(root)


def later(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


async def run_every_command(
    api: Api, token: TokenFactory, make_commands: Callable[[], CaseCommands], stored: Stored
) -> None:
    # An alarm with every optional field, dispatched late (breach emitted with the dispatch),
    # resolved, closed, reopened, rejected and closed again.
    alarm = (
        await api.receive(
            occurred_at=api.ago(minutes=3),
            priority="urgent",
            area_type="suburban",
            branch="public_order",
            party_category="non_local",
            category="dispute.neighbour",
            hours_type="extended",
            appointment_at=later(60),
            source_ref="110-20240501-0001",
            committed_due_at=later(24 * 60),
        )
    )["case_id"]
    for action in ("first-contact", "dispatch", "arrival", "resolution", "close"):
        await api.command(alarm, action)
    await api.command(alarm, "reopen", note=None)
    await api.command(alarm, "rejection")
    await api.command(alarm, "close")

    # A minimal alarm: no person, no optional fields; dispatched, arrival without officer.
    minimal = (await api.receive(person=None, hoped_outcome=None, area_type="rural"))["case_id"]
    await api.command(minimal, "dispatch", officer_ids=["p9"])
    await api.command(minimal, "arrival", officer_id=None)
    await api.command(
        minimal, "transfer", target_type="internal", target="330602002", person_informed=False
    )
    await api.command(minimal, "close")
    # What callbacks follow after the fact: an enforcement decision, classifications (one
    # with no category, one with no callback at all).
    officer = token("officer")
    await api.command(alarm, "enforcement-decision", headers=officer, note=None)
    await api.command(alarm, "classification", headers=officer)
    await api.command(
        minimal, "classification", headers=officer, crime_victim=False, preventable=False,
        category=None,
    )  # fmt: skip

    # A service application needing two visits (一次办结 false), then resolved.
    service = (await api.receive(kind="service", channel="window", priority="general"))["case_id"]
    await api.command(
        service,
        "service-visits",
        appointment_at=later(2 * 24 * 60),
        committed_due_at=later(7 * 24 * 60),
    )
    await api.command(service, "service-visits", missing_materials=[])
    await api.command(service, "resolution")
    await api.command(service, "close")

    # An online consultation: accepted, transferred, reopened, escalated.
    online = (await api.receive(kind="consultation", channel="online", priority="utilities"))[
        "case_id"
    ]
    await api.command(online, "first-contact", in_remit=False)
    await api.command(online, "transfer")
    await api.command(online, "close")
    await api.command(online, "reopen")
    await api.command(online, "escalation", target="county_government")

    # A petition: acceptance starts the 60-day conclusion promise; escalated with defaults.
    petition = (await api.receive(kind="petition", channel="letter"))["case_id"]
    await api.command(petition, "first-contact")
    await api.command(petition, "escalation")

    # A consultation rejected with a non-alarm reason and no explanation.
    tip = (await api.receive(kind="tip", channel="mailbox"))["case_id"]
    await api.command(tip, "rejection", reason="other", explanation=None)

    # Cases shared with the 12345 hotline: one it sent us, one we sent to it.
    from_hotline = (
        await api.receive(kind="help", channel="transfer_in", source_ref="12345:GD-2024-0001")
    )["case_id"]
    await api.command(from_hotline, "resolution")
    await api.command(from_hotline, "close")
    to_hotline = (await api.receive(kind="consultation", channel="online"))["case_id"]
    await api.command(to_hotline, "transfer", target_type="external", target="12345")

    # A city-scoped case in another county, and a breach recorded by the sweeper.
    city = token("intake_operator", scopes=["3306"], subject="city-op")
    await api.receive(headers=city, bureau="330603", occurred_at=api.ago(minutes=10))
    await stored.age_promises(minutes=5)
    assert await sweep_once(make_commands()) >= 1

    # The unit register: a station and a beat registered, the beat renamed and retired.
    admin = token("admin", subject="unit-admin")
    for path, body in (
        ("/v1/units", {"code": "330602001", "name": "城南派出所"}),
        ("/v1/units", {"code": "33060200101", "name": "鲁迅社区警务室"}),
        ("/v1/units/33060200101/rename", {"name": "鲁迅路社区警务室"}),
        ("/v1/units/33060200101/retire", {}),
    ):
        r = await api.client.post(path, json=body, headers=admin)
        assert r.status_code in (200, 201), r.text


async def test_every_emitted_event_validates_against_its_schema(
    registry: SchemaRegistry,
    api: Api,
    token: TokenFactory,
    stored: Stored,
    make_commands: Callable[[], CaseCommands],
) -> None:
    await run_every_command(api, token, make_commands, stored)
    rows = await stored.outbox()
    assert rows

    emitted = {row["type"] for row in rows}
    assert emitted == set(EVENT_TYPES), (
        f"the scenario should emit every declared type; missing {set(EVENT_TYPES) - emitted}"
    )
    undeclared = sorted(emitted - registry.types())
    assert not undeclared, f"emitted without a schema in {contracts_dir()}: {undeclared}"

    problems: list[str] = []
    for row in rows:
        type_, headers = row["type"], row["headers"]
        if headers.get("ce_type") != type_:
            problems.append(f"{type_}: ce_type header is {headers.get('ce_type')!r}")
        if headers.get("ce_dataschema") != dataschema_urn(type_):
            problems.append(f"{type_}: ce_dataschema is {headers.get('ce_dataschema')!r}")
        try:
            registry.validate(type_, row["payload"])
        except SchemaViolation as exc:
            problems.append(f"{exc} (payload {row['payload']})")
    assert not problems, "\n".join(problems)

    topics = {t for (t,) in await stored.pool.fetch("SELECT DISTINCT topic FROM outbox")}
    assert topics == {TOPIC, UNIT_TOPIC, hotline.TOPIC}
