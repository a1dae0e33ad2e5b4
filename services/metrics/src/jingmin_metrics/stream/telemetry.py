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
    "Times a processor rebuilt its partitions' cells (each rebalance).",
)
OWNED = Gauge("jingmin_metrics_owned_partitions", "Source partitions this processor owns.")
PUBLISHED = Counter("jingmin_metrics_snapshot_records", "Snapshot records published.")
GAP_RECORDS = Counter(
    "jingmin_metrics_gap_records",
    "Records the consumer skipped that a processor then read directly (stream/gaps.py).",
)
