"""Process-wide settings read from environment variables (documented in the README)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KernelSettings(BaseSettings):
    """Settings every service shares; a service reads its own extra ones beside these."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # Where the dev stack keeps local state (embedded Postgres data, dev signing key, master key).
    jingmin_home: Path = Field(default=Path(".jingmin"))

    # A server URL without a database name part is fine: each service appends its own database.
    database_url: str | None = None
    # Appended to every service database name, so a test stack or a second developer's
    # stack can share one PostgreSQL server without touching the dev databases.
    database_suffix: str = ""
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Apache Kafka supports the idempotent producer; the Tansu dev broker rejects it from aiokafka.
    kafka_idempotence: bool = False
    kafka_client_id: str = "jingmin"

    # Auth: production sets issuer, audience and a JWKS URL; dev signs with a local key.
    jwt_issuer: str = "jingmin-dev"
    jwt_audience: str = "jingmin"
    jwt_jwks_url: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])

    # Key-encryption key for per-person data keys (base64, 32 bytes). Dev generates one.
    master_key: str | None = None

    otel_exporter_otlp_endpoint: str | None = None
    log_level: str = "INFO"
    log_json: bool = True

    relay_batch_size: int = 500
    relay_poll_interval_seconds: float = 0.5
    max_body_bytes: int = 64 * 1024
    # Where relays and workers serve /metrics: loopback for the dev stack; a container
    # sets 0.0.0.0 so Prometheus (another container or pod) can scrape it.
    metrics_bind_address: str = "127.0.0.1"


def kernel_settings() -> KernelSettings:
    return KernelSettings()


DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def configured_server_url(settings: KernelSettings) -> str:
    """The Postgres server a child process was told to use (`jingmin dev` always sets it)."""
    return settings.database_url or DEFAULT_SERVER_URL


def service_dsn(settings: KernelSettings, database: str) -> str:
    """The DSN of one service's own database on the configured server."""
    from eventkit.db import database_dsn

    return database_dsn(configured_server_url(settings), database + settings.database_suffix)
