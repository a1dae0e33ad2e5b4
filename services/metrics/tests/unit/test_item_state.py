"""Per-item state is a semilattice of facts: figures do not depend on delivery."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from jingmin_metrics.domain import item
from jingmin_metrics.domain.facts import callback_root, make_fact
from jingmin_metrics.figures import compute, families
from jingmin_metrics.figures.select import index
from jingmin_metrics.stream.processor import Processor
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from support import case_events, envelope

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


def _service_case(t0: datetime, station: str, visits: int, resolved: dict) -> list:  # type: ignore[type-arg]
    cid = uuid.uuid4().hex
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    out = [envelope("intake", "CaseReceived", cid, 1, t0, {
        "case_id": cid, "channel": "window", "kind": "service", "priority": "normal",
        "area_type": "urban", "branch": "administration", "party_category": "local",
        "category": "household_registration", "deadlines": {},
    }, station=station)]  # fmt: skip
    for n in range(1, visits + 1):
        out.append(envelope("intake", "ServiceApplicationRecorded", cid, 1 + n, at(60 * n),
                            {"case_id": cid, "visit_number": n, "deadlines": {}},
                            station=station))  # fmt: skip
    out.append(envelope("intake", "CaseResolved", cid, 2 + visits, at(3600),
                        {"case_id": cid, **resolved}, station=station))  # fmt: skip
    return out


def test_a_station_recording_no_service_visits_does_not_score_best_on_one_visit() -> None:
    recording, silent = "330602001", "330602002"
    events = [
        *_service_case(T0, recording, 1, {"one_visit": True, "service_visits": 1}),
        *_service_case(T0, recording, 2, {"one_visit": False, "service_visits": 2}),
        # As intake used to publish it (one visit claimed with none recorded), and as it
        # publishes it now (nothing claimed): neither counts as done in one visit.
        *_service_case(T0, silent, 0, {"one_visit": True, "service_visits": 1}),
        *_service_case(T0, silent, 0, {}),
    ]
    by_measure = index(_cells(list(_deliveries(events))))

    def figures(station: str) -> dict:  # type: ignore[type-arg]
        intake = compute.summary(compute.Scope(by_measure, [station], None, None))["intake"]
        return {k: intake[k] for k in ("one_visit", "services_unrecorded")}

    assert figures(recording) == {
        "one_visit": {"numerator": 1, "denominator": 2, "rate": 0.5},
        "services_unrecorded": 0,
    }
    # "No value" with n = 0 and the unrecorded count beside it, never 100 %.
    assert figures(silent) == {
        "one_visit": {"numerator": 0, "denominator": 0, "rate": None},
        "services_unrecorded": 2,
    }
    # The bureau pools both: the silent station's services are outside the denominator.
    assert figures("330602")["one_visit"]["rate"] == 0.5

    exported = {
        (fam.name, s.labels.get("bureau")): s.value
        for fam in text_string_to_metric_families(_exposition(by_measure))
        for s in fam.samples
        if fam.name.startswith("jingmin_intake_services")
    }
    assert exported == {
        ("jingmin_intake_services_completed", "330602"): 4.0,
        ("jingmin_intake_services_visits_recorded", "330602"): 2.0,
        ("jingmin_intake_services_unrecorded", "330602"): 2.0,
        ("jingmin_intake_services_one_visit", "330602"): 1.0,
    }


def _exposition(by_measure: dict) -> str:  # type: ignore[type-arg]
    class Figures(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            return families.collect(by_measure, T0)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Figures())
    return generate_latest(reg).decode()


def test_json_target_shares_carry_numerator_and_denominator_and_match_the_exporter() -> None:
    late, quick = case_events(T0), case_events(T0 + timedelta(hours=1))
    for e in quick:  # this one dispatched 30 s after receipt, inside the 60 s target
        if e.type == "jingmin.intake.CaseDispatched.v1":
            e.data["occurred_at"] = (T0 + timedelta(hours=1, seconds=30)).isoformat()
    by_measure = index(_cells(list(_deliveries(late + quick))))
    figures = compute.summary(compute.Scope(by_measure, ["330602"], None, None))
    intake = figures["intake"]
    assert intake["dispatch_within_60s"] == {"numerator": 1, "denominator": 2, "rate": 0.5}
    # Both arrive 400 s after receipt, past their arrival due (390 s after receipt).
    assert intake["arrival_on_target"] == {"numerator": 0, "denominator": 2, "rate": 0.0}
    for key in ("acknowledged_on_time", "concluded_on_time"):
        assert set(figures["complaints"][key]) == {"numerator", "denominator", "rate"}
    buckets = {
        float(s.labels["le"]): s.value
        for fam in text_string_to_metric_families(_exposition(by_measure))
        for s in fam.samples
        if s.name == "jingmin_intake_dispatch_latency_seconds_bucket"
    }
    assert buckets[60.0] == 1 and buckets[float("inf")] == 2
