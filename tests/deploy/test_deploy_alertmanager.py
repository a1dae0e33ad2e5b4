"""deploy/alertmanager: amtool accepts the configuration, every alert routes by its
severity, and a real Alertmanager delivers a critical alert to the page receiver and a
warning to the ticket receiver of the compose stack's alert-sink."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import DEPLOY, tool
from eventkit.devstack import free_port

ALERTMANAGER = DEPLOY / "alertmanager"
CONFIG = ALERTMANAGER / "alertmanager.yml"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("amtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_amtool_check_config() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_routed_by_its_severity() -> None:
    """Critical pages (data loss risk, outages, partial figures); the rest is a ticket for
    the team it names (figures below target, lag, dead letters, latency)."""
    for rule in _alert_rules():
        labels = rule["labels"]
        assert labels["severity"] in {"critical", "warning"}, rule["alert"]
        assert labels["team"] in {"bureau-it", "command", "supervision"}, rule["alert"]
        pairs = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in labels.items())]
        result = _amtool("config", "routes", "test", f"--config.file={CONFIG}", *pairs)
        assert result.returncode == 0, result.stderr
        expected = "page" if labels["severity"] == "critical" else "ticket"
        assert result.stdout.split() == [expected], (rule["alert"], result.stdout)


def test_figures_below_target_open_tickets_and_outages_page() -> None:
    severity = {r["alert"]: r["labels"]["severity"] for r in _alert_rules()}
    for alert in ("JingminSatisfactionDrop", "JingminComplaintsOverdue"):
        assert severity[alert] == "warning"
    for alert in ("JingminRelayPublishFailing", "JingminTargetDown", "KafkaBrokerMissing"):
        assert severity[alert] == "critical"


def _wait(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _binary() -> str:
    for name in ("alertmanager", "prometheus-alertmanager"):  # upstream / Debian names
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("alertmanager is not installed (.ci/run installs prometheus-alertmanager)")


@pytest.fixture
def sink() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ALERTMANAGER / "sink.py"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base + "/healthz", time.monotonic() + 20)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def test_alertmanager_delivers_pages_and_tickets_to_the_sink(sink: str, tmp_path: Path) -> None:
    # The compose configuration, with the sink's address here and no batching delay.
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = hook["url"].replace("http://alert-sink:8080", sink)
    config["route"]["group_wait"] = "0s"
    for route in config["route"]["routes"]:
        route["group_wait"] = "0s"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            _binary(),
            f"--config.file={path}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(base + "/-/ready", time.monotonic() + 30)
        alerts = [
            {
                "labels": {
                    "alertname": "JingminRelayPublishFailing",
                    "service": "intake",
                    "severity": "critical",
                    "team": "bureau-it",
                },
                "annotations": {"summary": "intake: the relay fails every publish attempt"},
            },
            {
                "labels": {
                    "alertname": "JingminSatisfactionDrop",
                    "bureau": "330602",
                    "severity": "warning",
                    "team": "command",
                },
                "annotations": {"summary": "330602: satisfaction over 7 days is 75%"},
            },
        ]
        request = urllib.request.Request(
            base + "/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        deadline = time.monotonic() + 60
        delivered: dict[str, set[str]] = {}
        while len(delivered) < 2:
            with urllib.request.urlopen(sink + "/received", timeout=5) as response:
                received = json.loads(response.read())
            delivered = {}
            for entry in received:
                names = {a["labels"]["alertname"] for a in entry["notification"]["alerts"]}
                delivered.setdefault(entry["path"], set()).update(names)
            assert time.monotonic() < deadline, f"delivered so far: {delivered}"
            time.sleep(0.1)
        assert delivered == {
            "/page": {"JingminRelayPublishFailing"},
            "/ticket": {"JingminSatisfactionDrop"},
        }
    finally:
        proc.terminate()
        proc.wait(10)
