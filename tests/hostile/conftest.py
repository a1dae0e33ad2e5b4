"""Shared by the hostile tests: the seeded platform, built once for the whole folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from world import World, world


@pytest.fixture(scope="package")
async def the_world(
    pg_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    async with world(pg_server_url, tmp_path_factory.mktemp("world")) as w:
        yield w
