"""The 12345 hotline's partner topic: status changes of shared cases, nothing personal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eventkit.contracts import CONTRACTS_ENV, SchemaRegistry
from eventkit.store import PostgresEventStore
from jingmin_intake.integration import hotline
from jingmin_intake.integration.messages import to_messages

if TYPE_CHECKING:
    import asyncpg

    from conftest import Api, Stored

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
HOTLINE_TYPE = "jingmin.intake.HotlineCaseStatusChanged.v1"
SECRETS = ("王秀英", "13912345678", "33060219800101123X", "持刀", "尽快制止", "p1001", "p1002")


def _registry() -> SchemaRegistry:
    configured = os.environ.get(CONTRACTS_ENV)
    return SchemaRegistry.load(Path(configured) if configured else REPO / "contracts")


async def test_shared_cases_are_followed_on_the_hotline_topic(
    api: Api, stored: Stored, db: asyncpg.Pool
) -> None:
    registry = _registry()
    came = (await api.receive(kind="help", channel="transfer_in", source_ref="12345:GD-77"))[
        "case_id"
    ]
    for action in ("first-contact", "dispatch", "resolution", "close"):
        await api.command(came, action)
    sent = (await api.receive(kind="consultation", channel="online"))["case_id"]
    await api.command(sent, "transfer", person_informed=True)
    ours = (await api.receive())["case_id"]  # never shared
    await api.command(ours, "transfer", target_type="internal", target="330602002")
    covert = (
        await api.receive(channel="transfer_in", source_ref="12345:GD-78", category="covert")
    )["case_id"]
    await api.command(covert, "resolution")

    shared = [m for m in await stored.outbox() if m["type"] == HOTLINE_TYPE]
    for m in shared:
        registry.validate(HOTLINE_TYPE, m["payload"])
        assert m["headers"]["ce_source"] == hotline.SOURCE
        for secret in SECRETS:
            assert secret not in m["raw"]
        assert "subject_id" not in m["payload"]
    came_msgs = [m["payload"] for m in shared if m["payload"]["case_id"] == came]
    assert [p["status"] for p in came_msgs] == ["received", "resolved", "closed"]
    assert {p["direction"] for p in came_msgs} == {"from_hotline"}
    assert came_msgs[0]["hotline_ref"] == "GD-77"
    assert "resolved_at" in came_msgs[-1] and "closed_at" in came_msgs[-1]
    sent_msgs = [m["payload"] for m in shared if m["payload"]["case_id"] == sent]
    assert [(p["status"], p["direction"]) for p in sent_msgs] == [("transferred", "to_hotline")]
    assert sent_msgs[0]["person_informed"] is True
    assert not [m for m in shared if m["payload"]["case_id"] in (ours, covert)]

    # A replay rebuilds the same hotline messages from the stored events alone.
    again = []
    for event in await PostgresEventStore(db).load(came):
        again += [m.payload for m in to_messages(event) if m.topic == hotline.TOPIC]
    assert again == came_msgs
