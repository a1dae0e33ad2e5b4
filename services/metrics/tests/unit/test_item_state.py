"""Per-item state is a semilattice of facts: figures do not depend on delivery."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from jingmin_metrics.domain import item
from jingmin_metrics.domain.facts import callback_root, make_fact
from jingmin_metrics.stream.processor import Processor
from support import case_events

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def _deliveries(envelopes):  # type: ignore[no-untyped-def]
    for e in envelopes:
        fact = make_fact(e.type, e.data, e.data["occurred_at"], e.bureau, e.data["station"])
        context = e.type.split(".")[1]
        root = callback_root(e.streamid, e.data) if context == "visits" else e.streamid
        yield root.encode(), f"{context}:{e.streamid}", e.streamversion, fact


def _cells(deliveries) -> dict:  # type: ignore[no-untyped-def]
    proc = Processor()
    proc.load(0, [])
    for key, stream, version, fact in deliveries:
        proc.apply(0, key, stream, version, dict(fact))
    proc.settle(0)
    return {k: dict(v) for k, v in proc.partitions[0].cells.chunks.items() if v}


def test_redelivery_and_any_order_give_the_same_cells() -> None:
    events = [e for i in range(6) for e in case_events(T0 + timedelta(hours=i))]
    once = _cells(list(_deliveries(events)))
    assert once, "the case produced no figures"
    rng = random.Random(7)
    for _ in range(20):
        noisy = list(_deliveries(events)) * 3  # every message three times
        rng.shuffle(noisy)
        assert _cells(noisy) == once


def test_merge_is_a_join() -> None:
    facts = list(_deliveries(case_events(T0)))
    states = []
    for subset in (facts[:3], facts[2:6], facts[5:]):
        state = item.new_state(0)
        for _key, stream, version, fact in subset:
            item.add_fact(state, stream, version, fact)
        states.append(state)
    a, b, c = states
    assert item.merge(a, b) == item.merge(b, a)
    assert item.merge(item.merge(a, b), c) == item.merge(a, item.merge(b, c))
    assert item.merge(a, a) == a
    whole = item.merge(item.merge(a, b), c)
    # An older changelog record merged over a newer state removes nothing.
    assert item.merge(whole, a) == whole
    assert item.observations(whole) == item.observations(item.merge(c, item.merge(b, a)))


def test_a_batch_writes_each_changed_item_once_and_loading_them_gives_the_same_cells() -> None:
    facts = list(_deliveries(case_events(T0) + case_events(T0 + timedelta(hours=1))))
    proc = Processor()
    proc.load(0, [])
    for key, stream, version, fact in facts:
        assert proc.apply(0, key, stream, version, dict(fact))
    written, records = proc.take_write(0, now=0.0)
    assert len(written) == len({key for key, *_ in facts}) == 2
    assert records[-1][0] == "000/_status" and records[-1][1]
    proc.committed(0)
    # A duplicate changes nothing, so the next batch writes nothing.
    key, stream, version, fact = facts[0]
    assert not proc.apply(0, key, stream, version, dict(fact))
    assert proc.take_write(0) == ([], [])

    loaded = Processor()
    loaded.load(0, written)
    cells = [{k: v for k, v in p.partitions[0].cells.chunks.items() if v} for p in (proc, loaded)]
    assert cells[0] == cells[1]
    assert loaded.partitions[0].facts == proc.partitions[0].facts == len(facts)


def test_a_late_dispatch_breach_counts_as_not_on_time_and_the_callback_joins_the_case() -> None:
    cells = _cells(list(_deliveries(case_events(T0, party="vulnerable"))))
    flat = {m: v for chunk in cells.values() for (m, d), v in chunk.items()}
    measures = {m for chunk in cells.values() for (m, _d) in chunk}
    assert "intake.dispatch_latency" in measures
    closed = [d for chunk in cells.values() for (m, d) in chunk if m == "intake.closed"]
    assert closed and closed[0][-1] == "false"  # the dispatch promise was breached
    answered = [d for chunk in cells.values() for (m, d) in chunk if m == "callback.answered"]
    # The answer carries the case's dimensions (party category, officer) through the join.
    assert answered[0][5] == "vulnerable" and answered[0][7] == "p0007"
    assert flat["intake.dispatch_latency"][:2] == [1, 90_000]
