"""What a service tells the platform about itself (entry point group `jingmin.services`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from eventkit.store import OutboxMessage, RecordedEvent


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 6
    compacted: bool = False
    retention_ms: int | None = None
    description: str = ""


@dataclass(frozen=True)
class ServiceSpec:
    """A deployable bounded context: its database, HTTP app, topics and background work.

    `jingmin dev`, `replay`, `relay`, `erase` and `topics` iterate over every installed
    spec, so a service added later joins them by declaring its entry point.
    """

    name: str
    default_port: int
    database: str
    # uvicorn factory import string, e.g. "jingmin_intake.entrypoints.app:create_app".
    app: str
    migrations: Path
    topics: Sequence[TopicSpec]
    # Maps a stored event to the integration messages it publishes (used by the writer
    # and by replay, so both produce byte-identical envelopes with the same ce_id).
    to_messages: Callable[[RecordedEvent], Sequence[OutboxMessage]]
    # Import strings of `async def run(ctx: WorkerContext) -> None` loops run by `jingmin worker`.
    workers: Sequence[str] = field(default_factory=tuple)
    dead_letter_topic: str | None = None
    # Every integration event type the service can publish; contracts-check needs a schema
    # for each.
    event_types: Sequence[str] = field(default_factory=tuple)
    # Which types go to which topic, for a service with more than one event topic (the
    # AsyncAPI generator needs it); a single-topic service may leave it out.
    types_by_topic: Mapping[str, Sequence[str]] | None = None
    # Writes go through eventkit.chain (each event commits to its predecessor's hash), so
    # `jingmin verify-chain` checks this service's database.
    hash_chained: bool = False


def load_services() -> dict[str, ServiceSpec]:
    """Every installed service, by name, in port order."""
    specs: list[ServiceSpec] = []
    for ep in entry_points(group="jingmin.services"):
        spec = ep.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {ep.name} is not a ServiceSpec")
        specs.append(spec)
    return {s.name: s for s in sorted(specs, key=lambda s: s.default_port)}
