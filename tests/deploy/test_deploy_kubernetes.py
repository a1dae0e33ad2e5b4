"""deploy/k8s: kustomize renders; every object is valid; the production rules hold."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from deploy_support import SCHEMAS, known_variables

# The Kubernetes release the manifests target (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.32"

Objects = list[dict[str, Any]]


def _of(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def _containers(objects: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    for deployment in _of(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment["metadata"]["name"], container


def test_base_and_overlays_render(rendered: dict[str, Objects]) -> None:
    assert "production" in rendered
    for name, objects in rendered.items():
        assert objects, f"{name} renders nothing"
        assert all(
            o["metadata"].get("namespace") == "jingmin" for o in objects if o["kind"] != "Namespace"
        )


def test_every_object_is_valid(rendered: dict[str, Objects]) -> None:
    crds = yaml.safe_load((SCHEMAS / "crds.yaml").read_text())
    problems: list[str] = []
    for overlay, objects in rendered.items():
        for obj in objects:
            where = f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
                continue
            except kubernetes_validate.SchemaNotFoundError:
                pass
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{where}: {exc}")
                continue
            key = f"{obj['apiVersion']}/{obj['kind']}"
            if key not in crds["kinds"]:
                problems.append(f"{where}: no schema for {key}")
                continue
            schema = {"$defs": crds["$defs"], **crds["kinds"][key]}
            validator = jsonschema.Draft202012Validator(schema)
            for error in validator.iter_errors(obj):
                path = "/".join(map(str, error.absolute_path))
                problems.append(f"{where}: {path}: {error.message}")
    assert not problems, "\n".join(problems)


def test_the_crd_schemas_catch_mistakes() -> None:
    crds = yaml.safe_load((SCHEMAS / "crds.yaml").read_text())
    schema = {"$defs": crds["$defs"], **crds["kinds"]["kafka.strimzi.io/v1beta2/KafkaTopic"]}
    topic = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {"name": "t", "labels": {"strimzi.io/cluster": "jingmin"}},
        "spec": {"topicName": "t", "partitions": 1, "replica": 3, "config": {}},
    }
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(topic))


def test_production_pins_image_tags(rendered: dict[str, Objects]) -> None:
    for name, container in _containers(rendered["production"]):
        image = container["image"]
        assert not image.endswith(":latest") and ":" in image, f"{name}: {image}"


def test_every_container_has_probes_requests_and_limits(rendered: dict[str, Objects]) -> None:
    for overlay, objects in rendered.items():
        for name, container in _containers(objects):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{overlay} {name}: {kind}"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{overlay} {name}: no {probe}"
            if name.endswith("-api"):
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_secrets_are_referenced_never_included(rendered: dict[str, Objects]) -> None:
    for overlay, objects in rendered.items():
        assert not _of(objects, "Secret"), f"{overlay} ships a Secret"
        for name, container in _containers(objects):
            env = {e["name"]: e for e in container["env"]}
            for secret in ("DATABASE_URL", "MASTER_KEY"):
                assert "secretKeyRef" in env[secret]["valueFrom"], f"{name}: {secret}"
                assert "value" not in env[secret]
        config = _of(objects, "ConfigMap")[0]["data"]
        assert not any("PASSWORD" in k or "KEY" in k for k in config), config


def test_every_deployment_has_a_disruption_budget(rendered: dict[str, Objects]) -> None:
    for overlay, objects in rendered.items():
        budgets = [
            p["spec"]["selector"]["matchLabels"] for p in _of(objects, "PodDisruptionBudget")
        ]
        for deployment in _of(objects, "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            covered = [b for b in budgets if b.items() <= labels.items()]
            assert covered, f"{overlay}: {deployment['metadata']['name']} has no PDB"
            assert deployment["spec"]["replicas"] >= 2, "one replica cannot survive a drain"


def test_metrics_autoscaler_is_bounded_by_partitions(
    rendered: dict[str, Objects], plan: Any
) -> None:
    # The stream processors consume the domain topics: a replica beyond the smallest
    # partition count among them would own no partition of that topic.
    bound = min(t.partitions for t in plan.topics if t.kind == "events")
    for overlay, objects in rendered.items():
        (hpa,) = [h for h in _of(objects, "HorizontalPodAutoscaler")]
        assert hpa["spec"]["scaleTargetRef"]["name"] == "metrics-stream"
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= bound, overlay


def test_services_reach_only_their_own_database_and_the_brokers(
    rendered: dict[str, Objects],
) -> None:
    for overlay, objects in rendered.items():
        policies = {p["metadata"]["name"]: p for p in _of(objects, "NetworkPolicy")}
        assert "jingmin-default-deny" in policies
        deny = policies["jingmin-default-deny"]["spec"]
        assert set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny
        for cluster in _of(objects, "Cluster"):
            service = cluster["metadata"]["labels"]["jingmin.io/service"]
            own = policies[f"jingmin-{service}"]["spec"]
            assert own["podSelector"]["matchLabels"] == {"jingmin.io/service": service}
            databases = [
                peer["podSelector"]["matchLabels"]["cnpg.io/cluster"]
                for rule in own["egress"]
                for peer in rule["to"]
                if "cnpg.io/cluster" in peer.get("podSelector", {}).get("matchLabels", {})
            ]
            assert databases == [cluster["metadata"]["name"]], (overlay, service, databases)
            brokers = [
                rule
                for rule in own["egress"]
                if any(
                    "strimzi.io/cluster" in p.get("podSelector", {}).get("matchLabels", {})
                    for p in rule["to"]
                )
            ]
            assert [p["port"] for r in brokers for p in r["ports"]] == [9092]
            # No rule opens the whole internet (an empty `to` or a 0.0.0.0/0 block).
            for rule in own["egress"]:
                assert rule.get("to"), f"{service}: egress rule without a destination"
                assert all("ipBlock" not in peer for peer in rule["to"])
            # The database accepts its own service only.
            db_policy = policies[cluster["metadata"]["name"]]["spec"]
            clients = [
                peer["podSelector"]["matchLabels"]
                for rule in db_policy["ingress"]
                for peer in rule["from"]
                if "podSelector" in peer
                and "jingmin.io/service" in peer["podSelector"]["matchLabels"]
            ]
            assert clients == [{"jingmin.io/service": service}]


def test_kafka_cluster_replicates_and_topics_follow_topics_yaml(
    rendered: dict[str, Objects], plan: Any
) -> None:
    for overlay, objects in rendered.items():
        (kafka,) = _of(objects, "Kafka")
        config = kafka["spec"]["kafka"]["config"]
        assert config["min.insync.replicas"] == 2 and config["default.replication.factor"] == 3
        (pool,) = _of(objects, "KafkaNodePool")
        assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {
            "controller",
            "broker",
        }
        topics = {t["spec"]["topicName"]: t["spec"] for t in _of(objects, "KafkaTopic")}
        assert set(topics) == {t.name for t in plan.topics}, overlay
        for t in plan.topics:
            assert topics[t.name]["partitions"] == t.partitions
            assert topics[t.name]["replicas"] == 3
        users = {u["metadata"]["name"]: u for u in _of(objects, "KafkaUser")}
        assert set(users) == {p.name for p in plan.partners}
        for user in users.values():
            for acl in user["spec"]["authorization"]["acls"]:
                # Read-only and prefixed, without exception.
                assert set(acl["operations"]) <= {"Read", "Describe"}
                assert acl["resource"]["patternType"] == "prefix"


def test_every_variable_given_to_a_service_is_one_it_reads(rendered: dict[str, Objects]) -> None:
    known = known_variables()
    for overlay, objects in rendered.items():
        config = set(_of(objects, "ConfigMap")[0]["data"])
        assert not config - known, f"{overlay}: ConfigMap sets {sorted(config - known)}"
        for name, container in _containers(objects):
            unknown = {e["name"] for e in container["env"]} - known
            assert not unknown, f"{overlay}: {name} sets {sorted(unknown)}"
