"""The Prometheus collector over the figures view (figures only, within their budget)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jingmin_metrics.adapters.figures_reader import FiguresReader
from jingmin_metrics.adapters.unit_names import Names
from jingmin_metrics.domain.clock import OFFSET
from jingmin_metrics.figures import families
from jingmin_metrics.figures.select import Cell, index


class Figures:
    """The merged cells of the current figures view, indexed once per view version."""

    def __init__(self, reader: FiguresReader) -> None:
        self.reader = reader
        self._version = -1
        self._index: dict[str, list[Cell]] = {}
        self._latest: tuple[int, str, dict[str, dict[str, Any]]] = (-1, "", {})
        self._survey_key: tuple[str, frozenset[tuple[Any, ...]]] = ("", frozenset())
        # Replaced before each scrape and API answer (the app loads them from the database).
        self.names = Names()

    def index(self) -> dict[str, list[Cell]]:
        view = self.reader.view
        if view.version != self._version:
            self._index = index(view.merged())
            self._version = view.version
        return self._index

    def latest_waves(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Each county's latest survey wave, estimated again only when the bureau day or a
        survey cell changed: raking every county's stations costs seconds at 100 counties,
        and the view's version moves with every batch of any figure."""
        by_measure = self.index()
        day = (now.astimezone(UTC) + OFFSET).date().isoformat()
        if self._latest[:2] == (self._version, day):
            return self._latest[2]
        # The cells themselves, not a hash of them: a collision would serve stale figures.
        cells = frozenset(
            (c.measure, c.bureau, c.day, c.dims, c.count)
            for m in families.SURVEY_MEASURES
            for c in by_measure.get(m, ())
        )
        key = (day, cells)
        if key != self._survey_key:
            self._latest = (self._version, day, families.latest_waves(by_measure, now))
            self._survey_key = key
        else:
            self._latest = (self._version, day, self._latest[2])
        return self._latest[2]


class FiguresCollector(Collector):
    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        reader = self.figures.reader
        by_measure = self.figures.index()
        now = datetime.now(UTC)
        yield from families.collect(by_measure, now, self.figures.latest_waves(now))
        # Names beside codes: boards join this on the code (labels stay codes).
        info = GaugeMetricFamily(
            "jingmin_unit_info",
            "1 per county served and per station or beat in service; its current name.",
            labels=["code", "name", "level"],
        )
        bureaus = {c.bureau for cells in by_measure.values() for c in cells}
        for code, name, level in self.figures.names.info(bureaus):
            info.add_metric([code, name, level], 1.0)
        yield info
        ready = GaugeMetricFamily(
            "jingmin_metrics_snapshot_ready",
            "1 once the exporter has read the figures in the metrics database.",
        )
        ready.add_metric([], 1.0 if reader.caught_up.is_set() else 0.0)
        yield ready
        age = GaugeMetricFamily(
            "jingmin_metrics_snapshot_age_seconds",
            "Seconds since the exporter last received a changed figure record.",
        )
        age.add_metric([], time.time() - reader.last_record_at if reader.last_record_at else 0.0)
        yield age
        applied = CounterMetricFamily(
            "jingmin_metrics_events_applied",
            "Events the processors have applied (as their status records report).",
        )
        applied.add_metric([], float(reader.view.facts()))
        yield applied
        partitions = GaugeMetricFamily(
            "jingmin_metrics_partitions_reporting",
            "Source partitions whose processor has published a status record.",
        )
        partitions.add_metric([], float(len(reader.view.status)))
        yield partitions


def registry(figures: Figures) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FiguresCollector(figures))
    return reg
