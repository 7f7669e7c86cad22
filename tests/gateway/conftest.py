"""Fixtures for gateway tests."""
from __future__ import annotations

import pytest
from gwtest import Collector


@pytest.fixture
def collector_factory():
    made: list[Collector] = []

    def make(host: str, port: int, gateway_id: str) -> Collector:
        c = Collector(host, port, gateway_id).start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
