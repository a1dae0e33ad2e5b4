"""Settings of the metrics processes (environment variables, beside the kernel's)."""

from __future__ import annotations

from pathlib import Path

from eventkit.settings import KernelSettings


class MetricsSettings(KernelSettings):
    # Faust application id: the consumer group and the prefix of its internal topics.
    metrics_app_id: str = "jingmin-metrics"
    # Partitions of the internal topics (changelog, regrouped callbacks); must equal the
    # domain topics' (12), so one item's events from every topic meet on one worker.
    metrics_partitions: int = 12
    # Validate every consumed event against contracts/ (a bad one goes to metrics.dlq.v1).
    metrics_validate: bool = True
    # Processors run by one `jingmin worker --service metrics` (each its own faust worker).
    metrics_processors: int = 1
    # /metrics of processor number i is served on this port + i (0 disables); 8304 is the
    # worker process's own.
    metrics_processor_metrics_port: int = 8314
    # The metrics database (items, positions, figures); default: the service's own database
    # on the configured server (`DATABASE_URL`, `DATABASE_SUFFIX`).
    metrics_database_dsn: str | None = None
    # Most records a processor applies in one batch (one transaction).
    metrics_batch_size: int = 2000
    # Faust's local directory (the memory store keeps nothing there that matters).
    metrics_faust_datadir: Path = Path(".jingmin/metrics-faust")
    # Join and rebalance quickly: the dev broker is slow to form groups.
    metrics_session_timeout_seconds: float = 10.0
    metrics_rebalance_timeout_seconds: float = 20.0


def metrics_settings() -> MetricsSettings:
    return MetricsSettings()


def metrics_dsn(settings: MetricsSettings) -> str:
    """The metrics database: processors' state and the figures every reader serves."""
    from eventkit.settings import service_dsn

    return settings.metrics_database_dsn or service_dsn(settings, "jingmin_metrics")
