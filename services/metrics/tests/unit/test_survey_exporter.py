"""The exporter rakes the counties' latest survey waves again only when a survey cell or
the bureau day changed, not whenever any figure moved (raking 2,000 stations takes seconds)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from jingmin_metrics.domain.item import Observation
from jingmin_metrics.entrypoints.exporter import Figures
from jingmin_metrics.figures import snapshot
from support import SURVEY_VALUES, snapshot_records, synthetic_observations

NOW = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)


def _feed(view: snapshot.SnapshotView, extra: list[Observation]) -> None:
    """The records one processor would write for the synthetic cells plus `extra`."""
    for key, value in snapshot_records(synthetic_observations(["330602"], 2, NOW, 1) + extra):
        view.accept(key, value)


def test_latest_waves_are_estimated_again_only_when_a_survey_cell_changes() -> None:
    view = snapshot.SnapshotView()
    _feed(view, [])
    reader = SimpleNamespace(view=view)
    figures = Figures(reader)  # type: ignore[arg-type]
    first = figures.latest_waves(NOW)
    assert first["330602"]["satisfaction"]["weighted"]["n"] > 0
    # Another figure moved (a case received): the same estimates, not raked again.
    case = next(
        o for o in synthetic_observations(["330602"], 1, NOW, 1) if o.measure == "intake.received"
    )
    version = view.version
    _feed(view, [case])
    assert view.version > version
    assert figures.latest_waves(NOW) is first
    # A respondent more: estimated again, and n grows.
    wave = SURVEY_VALUES["wave"]
    station = "330602001"
    day = case.day
    dims = (station, wave, "completed", "30-44", "female", "local", "dissatisfied", "unsafe")
    _feed(view, [case, Observation("survey.respondents", "330602", day, dims, 1)])
    again = figures.latest_waves(NOW)
    assert again is not first
    n = again["330602"]["satisfaction"]["weighted"]["n"]
    assert n == first["330602"]["satisfaction"]["weighted"]["n"] + 1
