"""Every documented topic is provisioned, and every provisioned topic is documented.

Read at run time, so topics other services add later are checked as they land:
- the AsyncAPI documents (contracts/*/asyncapi.yaml): every channel must be provisioned
  (deploy/topics.yaml) with the partitions and cleanup policy the document states;
- the installed ServiceSpecs: every topic a service creates (`jingmin topics --create`),
  its dead-letter topic included, must be provisioned the same way;
- deploy/topics.yaml: every topic must be an AsyncAPI channel, or a service's dead-letter
  topic, or carry a `planned` note saying why it is listed before its owner documents it.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any

import yaml
from deploy_support import ROOT

CONTRACTS = ROOT / "contracts"


def _asyncapi_channels() -> dict[str, dict[str, Any]]:
    """Every channel of every AsyncAPI document, by topic name, with the owning context."""
    channels: dict[str, dict[str, Any]] = {}
    for path in sorted(CONTRACTS.glob("*/asyncapi.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name, channel in (doc.get("channels") or {}).items():
            topic = channel.get("address") or name
            kafka = (channel.get("bindings") or {}).get("kafka") or {}
            channels[topic] = {"context": path.parent.name, "kafka": kafka}
    return channels


def _service_specs() -> dict[str, Any]:
    specs: dict[str, Any] = {}
    for ep in entry_points(group="jingmin.services"):
        try:
            specs[ep.name] = ep.load()
        except ImportError:
            # A service whose package is still being written; its AsyncAPI document and
            # topics are checked once its entry point loads.
            continue
    return specs


def test_every_asyncapi_channel_is_provisioned_as_documented(plan: Any) -> None:
    provisioned = {t.name: t for t in plan.topics}
    channels = _asyncapi_channels()
    assert channels, "no AsyncAPI document found under contracts/"
    problems: list[str] = []
    for topic, channel in sorted(channels.items()):
        t = provisioned.get(topic)
        if t is None:
            problems.append(
                f"{topic} ({channel['context']}/asyncapi.yaml) is not in deploy/topics.yaml"
            )
            continue
        if t.owner != channel["context"]:
            problems.append(
                f"{topic}: owner {t.owner} in topics.yaml, {channel['context']} in contracts"
            )
        kafka = channel["kafka"]
        if "partitions" in kafka and kafka["partitions"] != t.partitions:
            problems.append(
                f"{topic}: {t.partitions} partitions provisioned, {kafka['partitions']} documented"
            )
        policy = (kafka.get("topicConfiguration") or {}).get("cleanup.policy")
        if policy is not None and ("compact" in policy) != t.compacted:
            problems.append(
                f"{topic}: cleanup.policy {policy} documented, compacted={t.compacted} provisioned"
            )
    assert not problems, "\n".join(problems)


def test_every_topic_a_service_declares_is_provisioned_the_same_way(plan: Any) -> None:
    from eventkit.devstack import service_topics

    provisioned = {t.name: t for t in plan.topics}
    problems: list[str] = []
    for name, spec in _service_specs().items():
        for topic in service_topics(spec):
            t = provisioned.get(topic.name)
            if t is None:
                problems.append(f"{name} creates {topic.name}, which deploy/topics.yaml lacks")
                continue
            if t.partitions != topic.partitions:
                problems.append(
                    f"{topic.name}: {t.partitions} provisioned, {topic.partitions} in {name}'s spec"
                )
            if t.compacted != topic.compacted:
                problems.append(
                    f"{topic.name}: compacted={t.compacted} provisioned, {topic.compacted} in spec"
                )
            if topic.retention_ms is not None and topic.retention_ms != t.retention_ms:
                problems.append(
                    f"{topic.name}: retention {t.retention_ms} here, {topic.retention_ms} in spec"
                )
            if t.owner != name:
                problems.append(f"{topic.name}: owner {t.owner} in topics.yaml, declared by {name}")
            if topic.name == spec.dead_letter_topic and t.kind != "dead-letter":
                problems.append(f"{topic.name}: {name}'s dead-letter topic is not kind dead-letter")
    assert not problems, "\n".join(problems)


def test_every_provisioned_topic_is_documented(plan: Any) -> None:
    channels = _asyncapi_channels()
    dead_letters = {
        spec.dead_letter_topic: name
        for name, spec in _service_specs().items()
        if spec.dead_letter_topic
    }
    # A processor's own state topic (kind snapshot) is no integration contract: its owner's
    # ServiceSpec declaring it (with a description) is its documentation.
    internal = {
        topic.name: name
        for name, spec in _service_specs().items()
        for topic in spec.topics
        if topic.description
    }
    undocumented: list[str] = []
    waiting: list[str] = []
    stale: list[str] = []
    for t in plan.topics:
        documented = (
            t.name in channels
            or dead_letters.get(t.name) == t.owner
            or (t.kind == "snapshot" and internal.get(t.name) == t.owner)
        )
        if documented:
            if t.planned:
                stale.append(t.name)
            continue
        if t.planned:
            waiting.append(f"{t.name} ({' '.join(t.planned.split())})")
        else:
            undocumented.append(t.name)
    assert not undocumented, (
        f"provisioned but documented nowhere (no AsyncAPI channel, no service declares it as "
        f"its dead-letter topic, no `planned` note): {undocumented}"
    )
    if stale:
        warnings.warn(
            f"documented now, so remove their `planned` note in deploy/topics.yaml: {stale}",
            stacklevel=1,
        )
    if waiting:
        warnings.warn(
            "topics provisioned ahead of their owners' documents: " + "; ".join(waiting),
            stacklevel=1,
        )


def test_topic_kinds_match_their_role(plan: Any) -> None:
    for t in plan.topics:
        if t.kind == "dead-letter":
            assert t.partitions == 1 and not t.compacted and t.name.endswith(".dlq.v1"), t.name
        if t.kind == "events":
            assert t.name.endswith(tuple(f".events.v{n}" for n in range(1, 10))), t.name
            assert t.partitions == 12, f"{t.name}: domain topics have 12 partitions (contracts.md)"
        if t.kind == "partner":
            assert ".public." in t.name, (
                f"{t.name}: partner topics are named <context>.<what>.public.v<N>"
            )
        assert t.name.rsplit(".", 1)[-1].startswith("v"), f"{t.name} has no version suffix"


def test_partner_grants_reach_partner_topics_only(plan: Any) -> None:
    for partner in plan.partners:
        assert partner.topics, partner.name
        for prefix in partner.topics:
            # A prefix stops at a dot, so `metrics.daily.public.` never matches
            # `metrics.daily.publicity.v1`, and it never reaches an internal topic.
            assert prefix.endswith("."), f"{partner.name}: prefix {prefix} must end with '.'"
            matched = [t for t in plan.topics if t.name.startswith(prefix)]
            assert matched, f"{partner.name}: {prefix} matches no provisioned topic"
            internal = [t.name for t in matched if t.kind != "partner"]
            assert not internal, f"{partner.name} could read internal topics {internal}"
        assert partner.group_prefix == f"partner.{partner.name}."
