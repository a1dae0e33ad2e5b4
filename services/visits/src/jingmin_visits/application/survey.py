"""Survey waves on the kernel's command path: the stream spec, its projection and roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from eventkit.commands import Stream
from eventkit.store import Change, NewEvent, PostgresTransaction, RecordedEvent

from jingmin_visits.domain.facts import Fact
from jingmin_visits.domain.survey import INTERVIEWS, SurveyWave
from jingmin_visits.integration.messages import SURVEY_STREAM, to_messages

# Who defines a wave, imports frames and draws samples: the bureau's survey organisers.
ORGANISER_ROLES = ("supervisor", "admin")
# Who records fieldwork: the officers and staff doing the interviews, on their station.
FIELD_ROLES = ("officer", "supervisor", "admin")
# Who reads the wave and its estimates.
READ_ROLES = ("officer", "supervisor", "commander", "admin")
# Who may ask who gave a survey answer (when the bureau's policy allows it at all).
LINK_ROLES = ("commander", "supervisor")

Decision = Callable[[SurveyWave, PostgresTransaction, datetime], Awaitable[list[Fact]]]


def load(wave_id: str, history: Sequence[RecordedEvent]) -> SurveyWave:
    return SurveyWave.from_history(wave_id, ((e.type, e.data, e.occurred_at) for e in history))


def new_event(wave: SurveyWave, fact: Fact, metadata: Mapping[str, Any]) -> NewEvent:
    # Station-level facts carry their station; the wave's own facts only the bureau.
    return NewEvent(
        type=fact.type,
        data=dict(fact.data),
        occurred_at=fact.occurred_at,
        bureau=wave.bureau,
        metadata={k: v for k, v in metadata.items() if v},
    )


def projection(wave: SurveyWave, at: datetime) -> Change:
    """The wave's list row, from its state after the newest facts."""
    assert wave.period_start is not None and wave.period_end is not None
    return Change(
        (
            """INSERT INTO survey_waves (wave_id, bureau, title, period_start, period_end,
                   status, stations_framed, stations_drawn, sampled, attempts, interviews,
                   version, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
               ON CONFLICT (wave_id) DO UPDATE SET status = excluded.status,
                   stations_framed = excluded.stations_framed,
                   stations_drawn = excluded.stations_drawn, sampled = excluded.sampled,
                   attempts = excluded.attempts, interviews = excluded.interviews,
                   version = excluded.version, updated_at = excluded.updated_at""",
        ),
        (
            wave.wave_id,
            wave.bureau,
            wave.title,
            wave.period_start,
            wave.period_end,
            wave.status,
            len(wave.frames),
            len(wave.draws),
            len(wave.units),
            sum(len(u.attempts) for u in wave.units.values()),
            sum(u.disposition in INTERVIEWS for u in wave.units.values()),
            wave.version,
            at,
        ),
    )


def _changes(
    wave: SurveyWave, events: Sequence[NewEvent], history: Sequence[RecordedEvent], now: datetime
) -> list[Change]:
    return [projection(wave, now)]


SURVEY_WAVE: Stream[SurveyWave] = Stream(
    noun="survey wave",
    id_field="wave_id",
    stream_type=SURVEY_STREAM,
    rebuild=load,
    to_event=new_event,
    publish=to_messages,
    # Organisers' commands are authorised on the bureau; fieldwork on the unit's station.
    unit=lambda wave: wave.bureau or None,
    changes=_changes,
    status_field="wave_status",
)
