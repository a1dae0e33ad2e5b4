"""The processors' own metrics (served per processor on METRICS_PROCESSOR_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FACTS = Counter(
    "jingmin_metrics_facts",
    "Events the metrics processors handled, by outcome "
    "(applied, duplicate, skipped, dead_lettered).",
    ["outcome"],
)
REBUILDS = Counter(
    "jingmin_metrics_rebuilds",
    "Assignments a processor took over (each rebalance).",
)
OWNED = Gauge("jingmin_metrics_owned_partitions", "Source partitions this processor owns.")
PUBLISHED = Counter("jingmin_metrics_snapshot_records", "Snapshot records published.")
REFUSED = Counter(
    "jingmin_metrics_refused_batches",
    "Batches whose commit the metrics database refused: another processor had claimed the "
    "partitions since (this one was a zombie); the batch is dropped, the figures unchanged.",
)
SEEKS = Counter(
    "jingmin_metrics_seeks",
    "Source partitions sought to the offset the metrics database holds (assignments, "
    "batches that did not start there, a client that ran past it).",
)
