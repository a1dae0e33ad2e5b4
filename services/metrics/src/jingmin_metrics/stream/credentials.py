"""The faust app's Kafka settings from the kernel's (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*,
KAFKA_SSL_*, KAFKA_DEV_BROKER): the stream processors reach the brokers exactly as every
other client of the platform does (eventkit.kafka.security_options)."""

from __future__ import annotations

from typing import Any

from eventkit import kafka
from eventkit.settings import KernelSettings
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT


def broker_credentials(settings: KernelSettings) -> CredentialsT | None:
    """faust's `broker_credentials`: None for PLAINTEXT, else TLS and/or SASL/SCRAM."""
    options = kafka.security_options(settings)
    protocol = options["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return SSLCredentials(options["ssl_context"])
    return SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        mechanism=options["sasl_mechanism"],
        ssl_context=options.get("ssl_context"),
    )


def dev_broker_options(settings: KernelSettings) -> dict[str, Any]:
    """faust settings only the dev broker needs.

    One record per batch (the Kafka client's batch limit is in bytes, and a batch always
    takes its first record). Tansu answers ListOffsets with the base offset of the last
    batch plus one, and faust recovers a changelog partition only up to that answer: with
    several records to a batch, a worker taking a partition over missed the tail of the
    last one, and the facts in it were never counted. Apache Kafka answers with the end of
    the log, and batches normally.
    """
    return {"producer_max_batch_size": 1} if settings.kafka_dev_broker else {}
