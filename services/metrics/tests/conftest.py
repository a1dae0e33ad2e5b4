"""Metrics test fixtures: a broker of its own (the helpers live in `metricskit`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eventkit import devstack


@pytest.fixture(scope="module")
def metrics_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu of this module's own: the processors read fixed topic names that other tests
    write too, and the oracle must compare against exactly the stores of these tests."""
    log = tmp_path_factory.mktemp("tansu-metrics") / "tansu.log"
    endpoint = devstack.start_tansu(devstack.free_port(), log_path=log)
    try:
        yield endpoint.address
    finally:
        endpoint.stop()
