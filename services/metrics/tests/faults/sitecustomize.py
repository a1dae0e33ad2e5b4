"""Fault injection for processor tests: records dropped between the Kafka client and faust.

`make chaos` saw a processor never receive a record whose offset its group then committed
past. A test starts a processor with this folder on PYTHONPATH (Python imports
`sitecustomize` at start) and METRICS_TEST_DROP=<topic>:<partition>:<offset>[,...]: each
named record is removed once from what the client fetched, before faust sees it.
"""

from __future__ import annotations

import os
from typing import Any

_spec = os.environ.get("METRICS_TEST_DROP", "")
if _spec:
    from faust.transport.drivers import aiokafka as _driver

    _drops = {
        (topic, int(partition), int(offset))
        for topic, partition, offset in (item.rsplit(":", 2) for item in _spec.split(","))
    }
    _fetch = _driver.AIOKafkaConsumerThread._fetch_records

    async def _fetch_dropping(self: Any, *args: Any, **kwargs: Any) -> Any:
        records = await _fetch(self, *args, **kwargs)
        for tp, batch in records.items():
            dropped = {(tp.topic, tp.partition, r.offset) for r in batch} & _drops
            if dropped:
                records[tp] = [
                    r for r in batch if (tp.topic, tp.partition, r.offset) not in dropped
                ]
                _drops.difference_update(dropped)
                print(f"METRICS_TEST_DROP dropped {sorted(dropped)}", flush=True)
        return records

    _driver.AIOKafkaConsumerThread._fetch_records = _fetch_dropping
