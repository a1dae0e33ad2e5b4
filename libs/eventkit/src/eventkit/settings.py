"""Process-wide settings read from environment variables (documented in the README)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    # The idempotent producer (Apache Kafka supports it). The Tansu dev broker rejects it
    # from aiokafka: the dev stack turns it off (devstack.start_tansu sets KAFKA_IDEMPOTENCE).
    kafka_idempotence: bool = True
    kafka_client_id: str = "jingmin"
    # The broker is the dev stack's Tansu (devstack.start_tansu sets KAFKA_DEV_BROKER):
    # only then do clients take its workarounds (short group timeouts, one record per
    # batch in faust). Never set it against Apache Kafka.
    kafka_dev_broker: bool = False
    # How every Kafka client (producers, consumers, faust, the admin calls) reaches the
    # brokers. Production (deploy/k8s): SASL_SSL with SCRAM-SHA-512, one KafkaUser per
    # service, the cluster CA from the Strimzi secret. SSL alone is TLS without SASL; a
    # client certificate and key (mutual TLS) may be given with it.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # PEM file of the CA that signed the brokers' certificates (None: the system's CAs).
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_check_hostname: bool = True

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
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto the APIs believe (uvicorn's own
    # variable and syntax: comma-separated addresses or CIDR networks, "*" for any).
    # Behind an ingress, its controllers' addresses; never "*" where clients can reach the
    # API directly, or anyone could pick the address the complaint form's limit counts.
    forwarded_allow_ips: str = "127.0.0.1"
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
