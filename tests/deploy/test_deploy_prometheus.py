"""deploy/prometheus: promtool accepts config and rules; every alert is tested and documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_support import DEPLOY, ROOT, tool

PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTS_DOC = ROOT / "docs" / "operations" / "alerts.md"
PLATFORM_RULES = PROMETHEUS / "rules" / "platform.rules.yml"

# Metric families the rules may use: the kernel's (eventkit.telemetry) and kafka-exporter's.
KAFKA_EXPORTER = {
    "kafka_brokers",
    "kafka_consumergroup_lag",
    "kafka_topic_partition_current_offset",
    "kafka_topic_partition_under_replicated_partition",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROMETHEUS,
        check=False,
    )


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path) -> None:
    result = _promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _alerts(path: Path) -> dict[str, str]:
    rules = yaml.safe_load(path.read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_every_platform_alert_has_a_unit_test() -> None:
    tested: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    untested = sorted(set(_alerts(PLATFORM_RULES)) - tested)
    assert not untested, f"alerts with no firing test case: {untested}"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_alert_is_explained_in_the_runbook(path: Path) -> None:
    doc = ALERTS_DOC.read_text()
    headings = {h.strip().lower() for h in re.findall(r"^#{2,4} (\S+)", doc, re.MULTILINE)}
    for name, _ in _alerts(path).items():
        assert name.lower() in headings, f"docs/operations/alerts.md has no section {name}"
    rules = yaml.safe_load(path.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                url = rule["annotations"]["runbook_url"]
                # Absolute: the people an alert reaches open it from a pager or a ticket.
                assert re.match(r"^https://[^/]+/", url), url
                assert url.split("#", 1)[1] == rule["alert"].lower()


def test_platform_rules_use_metrics_that_exist() -> None:
    from eventkit import telemetry

    kernel = set()
    for name in telemetry.__all__:
        metric = getattr(telemetry, name)
        describe = getattr(metric, "describe", None)
        if describe is None:
            continue
        for family in describe():
            kernel.add(family.name)
    suffixed = {
        f"{base}{suffix}"
        for base in kernel
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    text = PLATFORM_RULES.read_text()
    rules = yaml.safe_load(text)
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    used = set(re.findall(r"\b((?:jingmin|kafka)_[a-z_]+)\b", text))
    unknown = sorted(
        name
        for name in used
        if name not in suffixed | KAFKA_EXPORTER and not any(name in r for r in recorded)
    )
    assert not unknown, f"the rules use metrics nothing exports: {unknown}"


# What the Prometheus Operator adds to every series it scrapes from a pod (and, for a
# ServiceMonitor, `exported_service` beside a conflicting `service`): other values than the
# compose stack's, and labels it never sets.
SCRAPE_LABELS = {
    "job": "jingmin/jingmin-processes",
    "namespace": "jingmin",
    "pod": "intake-api-7c9d8f6b5-x2x4q",
    "container": "api",
    "endpoint": "http",
    "exported_service": "intake-api",
}
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


def with_scrape_labels(series: str) -> str:
    """`metric{a="1"}` with SCRAPE_LABELS added (job replaced), everything else kept."""
    name, _, body = series.partition("{")
    labels = dict(_LABEL.findall(body))
    labels.update(SCRAPE_LABELS)
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def test_with_scrape_labels_rewrites_a_selector() -> None:
    rewritten = with_scrape_labels('up{job="jingmin",service="intake",route="/v1/a,b"}')
    assert dict(_LABEL.findall(rewritten)) == {
        **SCRAPE_LABELS,
        "service": "intake",
        "route": "/v1/a,b",
    }
    assert with_scrape_labels("kafka_brokers").startswith("kafka_brokers{job=")


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_every_alert_still_fires_the_same_under_kubernetes_scrape_labels(
    path: Path, tmp_path: Path
) -> None:
    """Each test case again with job, namespace, pod, container, endpoint and exported_service
    on every input series: the same alerts, with the same labels, and the same recorded
    samples. An expression that matched a compose job name, or kept a scrape label in its
    output, fails here."""
    tests = yaml.safe_load(path.read_text())
    tests["rule_files"] = [str((path.parent / f).resolve()) for f in tests["rule_files"]]
    for case in tests["tests"]:
        for series in case.get("input_series", []):
            series["series"] = with_scrape_labels(series["series"])
    rewritten = tmp_path / path.name
    rewritten.write_text(yaml.safe_dump(tests, sort_keys=False, allow_unicode=True))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(rewritten)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
