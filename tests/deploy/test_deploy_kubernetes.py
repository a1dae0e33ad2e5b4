"""deploy/k8s: kustomize renders; every object is valid; the production rules hold."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
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
    schema = {"$defs": crds["$defs"], **crds["kinds"]["kafka.strimzi.io/v1/KafkaTopic"]}
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t", "labels": {"strimzi.io/cluster": "jingmin"}},
        "spec": {"topicName": "t", "partitions": 1, "replica": 3, "config": {}},
    }
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(topic))
    # The operators' own validators let the typo through (the API server would prune the
    # field and use the default): that is what the hand-written schemas are kept for.
    report = _operator_validators([topic])
    assert report["checked"] == ["KafkaTopic/t"] and not report["errors"]


def test_every_image_tag_is_pinned(rendered: dict[str, Objects]) -> None:
    for overlay, objects in rendered.items():
        for name, container in _containers(objects):
            image = container["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{overlay} {name}: {image}"


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
            for secret in ("DATABASE_URL", "MASTER_KEY", "KAFKA_SASL_PASSWORD"):
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
            # The brokers' TLS + SCRAM listener only.
            assert [p["port"] for r in brokers for p in r["ports"]] == [9093]
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
        users = {
            u["metadata"]["name"]: u
            for u in _of(objects, "KafkaUser")
            if "jingmin.io/partner" in u["metadata"]["labels"]
        }
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


# --------------------------------------------------------------------- Kafka security


def _services(render: Any) -> list[str]:
    return [name for name, _, _ in render.SERVICES]


def test_every_kafka_listener_authenticates_and_nobody_is_a_super_user(
    rendered: dict[str, Objects],
) -> None:
    for overlay, objects in rendered.items():
        (kafka,) = _of(objects, "Kafka")
        spec = kafka["spec"]["kafka"]
        for listener in spec["listeners"]:
            assert listener["tls"] is True, (overlay, listener["name"])
            assert listener["authentication"]["type"] == "scram-sha-512", overlay
        assert spec["authorization"]["type"] == "simple"
        assert not spec["authorization"].get("superUsers"), overlay
        assert spec["config"]["allow.everyone.if.no.acl.found"] is False


def test_each_service_connects_as_its_own_kafka_user_over_tls(
    rendered: dict[str, Objects], render: Any
) -> None:
    for overlay, objects in rendered.items():
        config = _of(objects, "ConfigMap")[0]["data"]
        assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert config["KAFKA_BOOTSTRAP_SERVERS"].endswith(":9093")
        users = {u["metadata"]["name"] for u in _of(objects, "KafkaUser")}
        for deployment in _of(objects, "Deployment"):
            service = deployment["metadata"]["labels"]["jingmin.io/service"]
            pod = deployment["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            env = {e["name"]: e for e in container["env"]}
            user = env["KAFKA_SASL_USERNAME"]["value"]
            assert user == f"jingmin-{service}" and user in users, (overlay, user)
            # Strimzi's User Operator writes the password to the Secret named after the user.
            assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": user,
                "key": "password",
            }
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert config["KAFKA_SSL_CAFILE"] == mounts["kafka-ca"] + "/ca.crt"
            assert volumes["kafka-ca"]["secret"]["secretName"] == "jingmin-cluster-ca-cert"


def _allows(acls: list[dict[str, Any]], kind: str, name: str, operation: str) -> bool:
    for acl in acls:
        resource = acl["resource"]
        if resource["type"] != kind or operation not in acl["operations"]:
            continue
        if resource["patternType"] == "literal" and resource["name"] in (name, "*"):
            return True
        if resource["patternType"] == "prefix" and name.startswith(resource["name"]):
            return True
    return False


def _consumed_by_the_code() -> dict[str, tuple[set[str], set[str]]]:
    """(topics, group ids) each service's consumers use, from the code itself."""
    from jingmin_complaints.application import consumers as complaints
    from jingmin_intake.application import visits_consumer as intake
    from jingmin_metrics.settings import MetricsSettings
    from jingmin_metrics.stream.sources import SOURCES
    from jingmin_visits.application import complaints_consumer, intake_consumer

    return {
        "intake": ({intake.VISITS_TOPIC}, {intake.GROUP_ID}),
        "visits": (
            {intake_consumer.INTAKE_TOPIC, *complaints_consumer.COMPLAINTS_TOPICS},
            {intake_consumer.GROUP_ID, complaints_consumer.GROUP_ID},
        ),
        "complaints": (
            {complaints.INTAKE_TOPIC, complaints.CALLBACK_TOPIC},
            {complaints.GROUP_ID},
        ),
        "metrics": (
            {s.topic for s in SOURCES} | {"metrics.figures.snapshot.v1"},
            {MetricsSettings.model_fields["metrics_app_id"].default},
        ),
    }


def test_service_kafka_users_have_least_privilege(
    rendered: dict[str, Objects], plan: Any, render: Any
) -> None:
    used = _consumed_by_the_code()
    for overlay, objects in rendered.items():
        users = {u["metadata"]["name"]: u["spec"] for u in _of(objects, "KafkaUser")}
        for service in _services(render):
            spec = users[f"jingmin-{service}"]
            assert spec["authentication"] == {"type": "scram-sha-512"}
            acls = spec["authorization"]["acls"]
            topics, groups = used[service]
            # What the code does is allowed ...
            for topic in topics:
                assert _allows(acls, "topic", topic, "Read"), (overlay, service, topic)
            for group in groups:
                assert _allows(acls, "group", group, "Read"), (overlay, service, group)
            for topic in plan.topics:
                if topic.owner == service:
                    assert _allows(acls, "topic", topic.name, "Write"), (service, topic.name)
                else:
                    # ... and nobody writes another service's topics,
                    assert not _allows(acls, "topic", topic.name, "Write"), (service, topic)
                    # or reads one its code does not consume.
                    if topic.name not in topics:
                        assert not _allows(acls, "topic", topic.name, "Read"), (
                            service,
                            topic.name,
                        )
            for acl in acls:
                assert acl["resource"]["name"] not in ("*", ""), (service, acl)
                assert not {"Delete", "Alter", "AlterConfigs", "All"} & set(acl["operations"])
            # Only the metrics processors create topics (faust's own, `jingmin-metrics-`).
            creates = [a for a in acls if "Create" in a["operations"]]
            if service == "metrics":
                assert [a["resource"]["name"] for a in creates] == ["jingmin-metrics-"]
            else:
                assert not creates, service


# ------------------------------------------------------------------------- monitoring


def test_every_process_is_scraped_by_a_pod_monitor(rendered: dict[str, Objects]) -> None:
    for objects in rendered.values():
        for deployment in _of(objects, "Deployment"):
            assert "annotations" not in deployment["spec"]["template"]["metadata"], (
                "prometheus.io annotations: the Prometheus Operator ignores them"
            )
        monitors = {m["metadata"]["name"]: m["spec"] for m in _of(objects, "PodMonitor")}
        processes = monitors["jingmin-processes"]
        match = processes["selector"]
        ports = {e["port"]: e for e in processes["podMetricsEndpoints"]}
        for deployment in _of(objects, "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert match["matchLabels"].items() <= labels.items()
            for expression in match["matchExpressions"]:
                if expression["operator"] == "In":
                    assert labels[expression["key"]] in expression["values"]
                else:
                    assert expression["key"] in labels
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            (port,) = container["ports"]
            endpoint = ports[port["name"]]
            assert endpoint["path"] == "/metrics"
            # The kernel's `service` label survives the scrape; `service` and `process`
            # come from the pod labels, as the rules expect.
            assert endpoint["honorLabels"] is True
            targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
            assert targets == {
                "service": ["__meta_kubernetes_pod_label_jingmin_io_service"],
                "process": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            }
        # Strimzi's Kafka Exporter (the kafka_* metrics of the rules) and the databases.
        (kafka,) = _of(objects, "Kafka")
        assert "kafkaExporter" in kafka["spec"]
        exporter = monitors["jingmin-kafka-exporter"]
        assert exporter["selector"]["matchLabels"]["strimzi.io/name"] == "jingmin-kafka-exporter"
        assert [e["port"] for e in exporter["podMetricsEndpoints"]] == ["tcp-prometheus"]
        databases = monitors["jingmin-databases"]
        assert {"key": "cnpg.io/cluster", "operator": "Exists"} in databases["selector"][
            "matchExpressions"
        ]
        for cluster in _of(objects, "Cluster"):
            assert cluster["spec"]["monitoring"]["enablePodMonitor"] is False


def test_prometheus_rules_are_the_rule_files_with_absolute_runbooks(
    rendered: dict[str, Objects], render: Any
) -> None:
    monitoring = render.load_monitoring()
    files = {
        "jingmin-" + p.name.split(".", 1)[0]: yaml.safe_load(p.read_text())["groups"]
        for p in sorted(render.RULES_DIR.glob("*.yml"))
    }
    for overlay, objects in rendered.items():
        rules = {r["metadata"]["name"]: r["spec"]["groups"] for r in _of(objects, "PrometheusRule")}
        assert rules == files, overlay
        for groups in rules.values():
            for group in groups:
                for rule in group["rules"]:
                    url = rule.get("annotations", {}).get("runbook_url")
                    if url is None:
                        continue
                    assert url == f"{monitoring.runbook_base_url}#{rule['alert'].lower()}"
                    assert url.startswith("https://")


def test_runbook_base_is_configurable(render: Any) -> None:
    text = "      runbook_url: docs/operations/alerts.md#jingmintargetdown\n"
    assert render.with_runbook_base(text, "https://wiki.bureau.example/alerts") == (
        "      runbook_url: https://wiki.bureau.example/alerts#jingmintargetdown\n"
    )


def test_the_alertmanager_config_routes_as_the_compose_one(
    rendered: dict[str, Objects], render: Any
) -> None:
    compose = yaml.safe_load(render.ALERTMANAGER_CONFIG.read_text())
    monitoring = render.load_monitoring()
    for overlay, objects in rendered.items():
        (config,) = _of(objects, "AlertmanagerConfig")
        spec = config["spec"]
        assert spec["route"]["receiver"] == compose["route"]["receiver"]
        routes = [(r["receiver"], r["matchers"]) for r in spec["route"]["routes"]]
        assert routes == [
            ("page", [{"name": "severity", "value": "critical"}]),
            ("ticket", [{"name": "severity", "value": "warning|info", "matchType": "=~"}]),
        ], overlay
        for receiver in spec["receivers"]:
            for hook in receiver["webhookConfigs"]:
                secret = monitoring.receiver_secrets[receiver["name"]]
                assert hook["urlSecret"] == {"name": secret, "key": "url"}
        for kind in ("PodMonitor", "PrometheusRule", "AlertmanagerConfig"):
            for obj in _of(objects, kind):
                assert monitoring.labels.items() <= obj["metadata"]["labels"].items()


def test_prometheus_may_scrape_what_the_monitors_select(rendered: dict[str, Objects]) -> None:
    for overlay, objects in rendered.items():
        policies = {p["metadata"]["name"]: p["spec"] for p in _of(objects, "NetworkPolicy")}
        exporter = policies["jingmin-kafka-exporter-metrics"]
        assert [p["port"] for r in exporter["ingress"] for p in r["ports"]] == [9404]
        for cluster in _of(objects, "Cluster"):
            db = policies[cluster["metadata"]["name"]]
            monitoring = [
                r
                for r in db["ingress"]
                if any(
                    peer.get("namespaceSelector", {}).get("matchLabels", {})
                    == {"kubernetes.io/metadata.name": "monitoring"}
                    for peer in r["from"]
                )
            ]
            assert [p["port"] for r in monitoring for p in r["ports"]] == [9187], overlay


# ---------------------------------------------------------------------- public pages


def test_the_ingress_serves_the_public_pages_and_nothing_else(
    rendered: dict[str, Objects],
) -> None:
    from eventkit.published_schemas import schema_router
    from jingmin_complaints.entrypoints import public
    from jingmin_visits.entrypoints import survey_page

    public_paths = {
        r.path  # type: ignore[attr-defined]
        for router in (public.router, survey_page.router, schema_router())
        for r in router.routes
    }
    for overlay, objects in rendered.items():
        (ingress,) = _of(objects, "Ingress")
        services = {s["metadata"]["name"]: s for s in _of(objects, "Service")}
        exposed = []
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services, backend
                assert backend["port"]["name"] in {
                    p["name"] for p in services[backend["name"]]["spec"]["ports"]
                }
                exposed.append((path["path"], path["pathType"]))
        for prefix, kind in exposed:
            # Every exposed path leads to a public page, never to /v1, /metrics or health.
            assert any(
                p == prefix or (kind == "Prefix" and p.startswith(prefix + "/"))
                for p in public_paths
            ), prefix
            assert not prefix.startswith(("/v1", "/metrics", "/healthz", "/readyz"))
        for page in ("/complain", "/track/{code}", "/s/{token}", "/schemas/{name}"):
            assert any(
                page == p or (k == "Prefix" and page.startswith(p + "/")) for p, k in exposed
            ), page
        assert ingress["spec"]["tls"], overlay


def test_the_apis_trust_forwarded_headers_from_the_ingress_only(
    rendered: dict[str, Objects],
) -> None:
    import ipaddress

    for overlay, objects in rendered.items():
        config = _of(objects, "ConfigMap")[0]["data"]
        trusted = [t.strip() for t in config["FORWARDED_ALLOW_IPS"].split(",")]
        assert "*" not in trusted, overlay
        for entry in trusted:
            network = ipaddress.ip_network(entry)
            assert network.is_private, entry


CRD_VALIDATE = SCHEMAS.parent / "crd-validate"

# The custom resource groups ../crd-validate/validate.mjs checks, each with validators its
# npm package generates from the operator's own API (see schemas/README.md).
OPERATOR_GROUPS = frozenset({"monitoring.coreos.com", "kafka.strimzi.io", "postgresql.cnpg.io"})


def _operator_validators(objects: Objects) -> dict[str, list[str]]:
    """validate.mjs's report on `objects`: {"checked": [...], "errors": [...]}."""
    import json
    import subprocess

    from deploy_support import tool

    if not (CRD_VALIDATE / "node_modules" / "@kubernetes-models").is_dir():
        pytest.fail("run `npm ci --prefix tests/deploy/crd-validate` (make setup does)")
    result = subprocess.run(
        [tool("node"), str(CRD_VALIDATE / "validate.mjs")],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=CRD_VALIDATE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, list[str]] = json.loads(result.stdout)
    return report


def test_custom_resources_pass_their_operators_validators(rendered: dict[str, Objects]) -> None:
    """Validators generated from the operators' own APIs (npm packages
    @kubernetes-models/prometheus-operator, strimzi-kafka-operator and cloudnative-pg;
    `npm ci --prefix tests/deploy/crd-validate`, which `make setup` and .ci/run do): types,
    enums, required fields and bounds as the API server checks them. The hand-written
    schemas above add what it would prune silently (typos) and the project's own rules."""
    for overlay, objects in rendered.items():
        report = _operator_validators(objects)
        expected = [
            f"{o['kind']}/{o['metadata']['name']}"
            for o in objects
            if o["apiVersion"].split("/")[0] in OPERATOR_GROUPS
        ]
        # Every custom resource of those groups was checked, none skipped.
        assert sorted(report["checked"]) == sorted(expected), overlay
        kinds = {name.split("/")[0] for name in report["checked"]}
        assert kinds >= {
            "PodMonitor",
            "PrometheusRule",
            "AlertmanagerConfig",
            "Kafka",
            "KafkaNodePool",
            "KafkaTopic",
            "KafkaUser",
            "Cluster",
        }, overlay
        assert not report["errors"], f"{overlay}: " + "\n".join(report["errors"])


def test_the_operators_validators_catch_mistakes(rendered: dict[str, Objects]) -> None:
    import copy

    objects = rendered["base"]

    def broken(kind: str, name: str) -> dict[str, Any]:
        obj = copy.deepcopy(_of(objects, kind)[0])
        obj["metadata"]["name"] = name
        return obj

    topic = broken("KafkaTopic", "broken-topic")
    topic["spec"]["partitions"] = "three"
    kafka = broken("Kafka", "broken-kafka")
    kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"] = "scram-sha-256"
    user = broken("KafkaUser", "broken-user")
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    cluster = broken("Cluster", "broken-db")
    cluster["spec"]["instances"] = "two"
    # A kind of a known group without a validator, and Strimzi's retired v1beta2 API.
    backup = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Backup",
        "metadata": {"name": "broken-backup"},
        "spec": {"cluster": {"name": "jingmin-intake-db"}},
    }
    old = {**broken("KafkaTopic", "old-topic"), "apiVersion": "kafka.strimzi.io/v1beta2"}
    report = _operator_validators([topic, kafka, user, cluster, backup, old])
    errors = {e.split(": ", 1)[0]: e.split(": ", 1)[1] for e in report["errors"]}
    assert len(errors) == len(report["errors"]), report["errors"]
    assert errors.keys() == {
        "KafkaTopic/broken-topic",
        "Kafka/broken-kafka",
        "KafkaUser/broken-user",
        "Cluster/broken-db",
        "Backup/broken-backup",
        "KafkaTopic/old-topic",
    }, report["errors"]
    assert errors["KafkaTopic/broken-topic"] == "data/spec/partitions must be integer"
    assert "listeners/0/authentication/type" in errors["Kafka/broken-kafka"]
    assert "acls/0/operations/0" in errors["KafkaUser/broken-user"]
    assert errors["Cluster/broken-db"] == "data/spec/instances must be integer"
    assert errors["Backup/broken-backup"].startswith("no validator")
    assert errors["KafkaTopic/old-topic"].startswith("no validator")
