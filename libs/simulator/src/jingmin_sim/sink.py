"""The citizen's phone in development: SMS survey links read from visits' dev sink.

Only for `make dev`, where visits has no SMS gateway and records each message in its
`sms_sink` table (phone numbers masked). Reading that table is the one place the simulator
looks at a database, and it only reads: every answer still goes through the public survey
page (`POST /s/{token}`), exactly as a citizen's browser would send it.
"""

from __future__ import annotations

import asyncio
import re
import time

import asyncpg

_LINK = re.compile(r"/s/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


class SmsSink:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
            return self._pool

    async def check(self) -> None:
        """Fail early (and clearly) when the sink is not there."""
        pool = await self._connect()
        await pool.fetchval("SELECT count(*) FROM sms_sink WHERE false")

    async def link(self, callback_id: str) -> str | None:
        pool = await self._connect()
        text = await pool.fetchval(
            "SELECT text FROM sms_sink WHERE reference = $1 ORDER BY sent_at DESC LIMIT 1",
            callback_id,
        )
        match = _LINK.search(text or "")
        return match[1] if match else None

    async def wait_for_link(self, callback_id: str, timeout: float) -> str | None:  # noqa: ASYNC109
        """The token of the callback's survey link, once visits' SMS loop has sent it."""
        deadline = time.monotonic() + timeout
        delay = 0.5
        while True:
            token = await self.link(callback_id)
            if token is not None or time.monotonic() > deadline:
                return token
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
