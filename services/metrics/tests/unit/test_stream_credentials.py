"""The faust stream processors reach Kafka with the same TLS and SASL/SCRAM settings as
every other client (eventkit.kafka.security_options); dev-broker workarounds only there.

No SCRAM listener is started (the Tansu dev broker offers none): faust's own translation
of `broker_credentials` into the aiokafka client arguments is compared instead.
"""

from __future__ import annotations

import ssl

import pytest
from eventkit import kafka
from eventkit.settings import KernelSettings
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from jingmin_metrics.stream import credentials


def test_plaintext_gives_faust_no_credentials() -> None:
    settings = KernelSettings(kafka_security_protocol="PLAINTEXT")
    assert credentials.broker_credentials(settings) is None


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT", "SSL"])
def test_faust_builds_the_same_client_arguments_as_the_kernel(protocol: str) -> None:
    settings = KernelSettings(
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="jingmin-metrics",
        kafka_sasl_password="s3cret",
    )
    creds = credentials.broker_credentials(settings)
    faust_args = dict(credentials_to_aiokafka_auth(creds))
    kernel_args = kafka.security_options(settings)
    assert faust_args.pop("security_protocol") == kernel_args.pop("security_protocol")
    faust_context = faust_args.pop("ssl_context", None)
    kernel_context = kernel_args.pop("ssl_context", None)
    assert (faust_context is None) == (kernel_context is None)
    if protocol != "SASL_PLAINTEXT":
        assert isinstance(faust_context, ssl.SSLContext)
    assert faust_args == kernel_args
