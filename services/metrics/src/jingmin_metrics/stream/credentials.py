"""The faust app's Kafka settings from the kernel's (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*,
KAFKA_SSL_*, KAFKA_DEV_BROKER): the stream processors reach the brokers exactly as every
other client of the platform does (eventkit.kafka.security_options)."""

from __future__ import annotations

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
