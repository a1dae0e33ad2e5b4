"""Kafka client construction with the settings every producer and consumer must share."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from eventkit.settings import KernelSettings, kernel_settings

# Group membership timeouts. Apache Kafka's own default session (45 s) rides out a broker
# restart or a long GC pause; the dev broker is slow to form groups, so tests and
# `jingmin dev` use short ones there (KAFKA_DEV_BROKER).
SESSION_TIMEOUT_MS = 45000
HEARTBEAT_INTERVAL_MS = 3000
DEV_BROKER_SESSION_TIMEOUT_MS = 10000
DEV_BROKER_HEARTBEAT_INTERVAL_MS = 1000


def ssl_context(settings: KernelSettings) -> ssl.SSLContext:
    """The TLS context every client verifies the brokers with (KAFKA_SSL_*)."""
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def security_options(settings: KernelSettings | None = None) -> dict[str, Any]:
    """The aiokafka keyword arguments for TLS and SASL, shared by every client the platform
    builds: producers, consumers, the admin client (and, through faust's own translation
    of the same settings, the stream processors: jingmin_metrics.stream.credentials).

    Without `settings`, the process's environment decides (KAFKA_SECURITY_PROTOCOL ...).
    A SASL protocol without a username and password is a configuration error, raised
    here rather than as an authentication failure at the first connection.
    """
    s = settings or kernel_settings()
    protocol = s.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(s)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if not s.kafka_sasl_username or s.kafka_sasl_password is None:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME "
                "and KAFKA_SASL_PASSWORD"
            )
        options["sasl_mechanism"] = s.kafka_sasl_mechanism
        options["sasl_plain_username"] = s.kafka_sasl_username
        options["sasl_plain_password"] = s.kafka_sasl_password.get_secret_value()
    return options


def group_timeouts(settings: KernelSettings | None = None) -> dict[str, int]:
    """Consumer group session and heartbeat: short only on the dev broker."""
    s = settings or kernel_settings()
    if s.kafka_dev_broker:
        return {
            "session_timeout_ms": DEV_BROKER_SESSION_TIMEOUT_MS,
            "heartbeat_interval_ms": DEV_BROKER_HEARTBEAT_INTERVAL_MS,
        }
    return {
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
    }


def producer(
    settings: KernelSettings, bootstrap: str | None = None, **overrides: Any
) -> AIOKafkaProducer:
    """An idempotence-aware producer with acks=all: a write the broker acknowledged survives."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap or settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotence,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15000,
        **security_options(settings),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def reader(
    settings: KernelSettings, bootstrap: str | None = None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer outside any consumer group: the caller assigns its partitions and seeks
    them to offsets it keeps itself (with its effects, in its own database). It commits
    nothing to Kafka."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap or settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "request_timeout_ms": 15000,
        **security_options(settings),
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


def record_headers(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in headers.items()]


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    """The body exactly as the relay sends it, so a replayed message is byte-identical."""
    return json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str
    ).encode()


def transient(exc: BaseException) -> bool:
    """Whether a long-running loop should log `exc` and try again, rather than stop.

    Every Exception is; a CancelledError is only when it does not cancel the current task.
    Such one comes from inside the Kafka client (a request whose connection closed when the
    broker was lost). faust ends a timer on CancelledError for good, so let through it
    stopped the metrics publisher: `make chaos` broker-restart read 0 of 3,008 events applied.
    """
    if not isinstance(exc, asyncio.CancelledError):
        return isinstance(exc, Exception)
    task = asyncio.current_task()
    return task is not None and not task.cancelling()
