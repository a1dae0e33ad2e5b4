"""deploy/compose: valid Compose, and the stack it describes is the one the issue asks for."""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import DEPLOY, SCHEMAS, compose_file, known_variables

COMPOSE_DIR = DEPLOY / "compose"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_file()


def test_compose_file_is_valid_against_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
    )


def test_the_schema_rejects_what_compose_would_reject() -> None:
    # The vendored schema is strict where it matters, so a typo cannot pass unnoticed.
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    bad = {"services": {"a": {"image": "x", "depends_on": {"b": {"condition": "healthy"}}}}}
    assert list(validator.iter_errors(bad))
    assert list(validator.iter_errors({"services": {"a": {"imag": "x"}}}))


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_kafka_is_three_kraft_brokers_with_rf3_and_min_isr_2(compose: dict[str, Any]) -> None:
    brokers = {n: s for n, s in compose["services"].items() if re.fullmatch(r"kafka-\d", n)}
    assert len(brokers) == 3
    voters = set()
    for name, service in brokers.items():
        env = _env(service)
        assert service["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        assert f"INTERNAL://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert "healthcheck" in service
    assert len(voters) == 1, "every broker must name the same controller quorum"
    assert len(next(iter(voters)).split(",")) == 3


def test_every_service_runs_its_api_relay_and_workers(
    compose: dict[str, Any], render: ModuleType
) -> None:
    services = compose["services"]
    for name, _, port in render.SERVICES:
        api = services[f"{name}-api"]
        assert f"{port}:{port}" in api["ports"]
        assert api["healthcheck"]["test"][-1].count(f":{port}/readyz")
        assert services[f"{name}-relay"]["command"] == ["jingmin", "relay", "--service", name]
        assert services[f"{name}-worker"]["command"] == ["jingmin", "worker", "--service", name]
        assert services[f"{name}-migrate"]["command"] == ["jingmin", "migrate", "--service", name]
        for role in ("api", "relay", "worker", "migrate"):
            env = _env(services[f"{name}-{role}"])
            # Each service logs in as its own role to its own database.
            assert env["DATABASE_URL"].startswith(f"postgresql://{name}:"), (name, role)
            assert env["DATABASE_URL"].endswith(f"/jingmin_{name}"), (name, role)
            assert env["KAFKA_IDEMPOTENCE"] == "true"
            assert env["METRICS_BIND_ADDRESS"] == "0.0.0.0"
        assert _env(services[f"{name}-relay"])["HEALTH_PORT"] == str(port + 100)
        assert _env(services[f"{name}-worker"])["HEALTH_PORT"] == str(port + 200)


def test_depends_on_waits_for_health_and_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency} to be healthy, but it has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", (
                    f"{dependency} is waited on to complete but restarts"
                )
            else:
                pytest.fail(f"{name} -> {dependency}: start order without a readiness condition")


def test_metrics_stream_workers_can_be_scaled(compose: dict[str, Any]) -> None:
    stream = compose["services"]["metrics-stream"]
    # --scale fails on a fixed container name or host port.
    assert "container_name" not in stream
    assert "ports" not in stream
    assert stream["deploy"]["replicas"] >= 2


def test_provisioning_job_gets_every_partner_password(compose: dict[str, Any], plan: Any) -> None:
    job = compose["services"]["kafka-init"]
    wanted = {f"partner-{p.name}.password" for p in plan.partners}
    assert set(job["secrets"]) == wanted
    assert wanted <= set(compose["secrets"])
    assert job["entrypoint"][-1] == "/provision/provision.sh"


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                continue  # a named volume
            if source == "../grafana":
                continue  # the dashboards: the metrics work (issue 5) creates the folder
            assert (COMPOSE_DIR / source).exists(), f"{name} mounts missing {source}"
    for secret in compose["secrets"].values():
        # Created by init-secrets.sh, which must know every one of them.
        stem = secret["file"].rsplit("/", 1)[-1].removesuffix(".password")
        assert stem in (COMPOSE_DIR / "init-secrets.sh").read_text()


def test_every_required_variable_is_created_by_init_secrets(compose: dict[str, Any]) -> None:
    text = (COMPOSE_DIR / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    script = (COMPOSE_DIR / "init-secrets.sh").read_text()
    missing = sorted(v for v in required if f"add {v} " not in script)
    assert not missing, f"init-secrets.sh does not create {missing}"


def test_prometheus_scrapes_every_process_at_its_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets.update((n, sd["port"]) for n in sd["names"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
    services = compose["services"]
    for host, _ in targets - {("localhost", 9090)}:
        assert host in services, f"Prometheus scrapes {host}, which compose does not run"
    for name, service in services.items():
        port = _env(service).get("HEALTH_PORT")
        if port and name.rsplit("-", 1)[-1] in ("relay", "worker"):
            assert (name, int(port)) in targets, f"{name}:{port} is not scraped"
        if name.endswith("-api"):
            api_port = int(service["ports"][0].split(":")[0])
            assert (name, api_port) in targets, f"{name} is not scraped"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    provisioning = COMPOSE_DIR / mounts["./grafana/provisioning"].replace(
        "/etc/grafana/provisioning", "grafana/provisioning"
    )
    datasources = yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())
    urls = {d["uid"]: d["url"] for d in datasources["datasources"]}
    assert urls["prometheus"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yaml").read_text())
    paths = {p["options"]["path"] for p in providers["providers"]}
    assert mounts["../grafana"] in paths


def test_traces_flow_from_services_to_the_trace_backend(compose: dict[str, Any]) -> None:
    collector = yaml.safe_load((COMPOSE_DIR / "otel" / "collector.yaml").read_text())
    pipeline = collector["service"]["pipelines"]["traces"]
    assert "otlp" in pipeline["receivers"]
    exporter = collector["exporters"][pipeline["exporters"][0]]
    host = exporter["endpoint"].split(":")[0]
    assert host in compose["services"]
    endpoint = _env(compose["services"]["intake-api"])["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint.split("//")[1].split(":")[0] == "otel-collector"
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_every_variable_given_to_a_service_is_one_it_reads(compose: dict[str, Any]) -> None:
    # A misspelt or invented variable is silently ignored by pydantic-settings: the
    # service would run with its development default instead.
    known = known_variables()
    for name, service in compose["services"].items():
        if not str(service.get("image", "")).startswith("jingmin/"):
            continue
        unknown = sorted(set(_env(service)) - known)
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"
