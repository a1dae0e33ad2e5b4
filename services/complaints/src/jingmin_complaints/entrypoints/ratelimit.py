"""Per-client-address token buckets for the public pages, kept in the process.

Why in-process: the pages are the only unauthenticated writes, the limits only need to
blunt a flood or a script from one address, and a shared store (Redis) would be one more
thing to run. With N API replicas an address gets at most N times the budget, which is
still bounded. Behind a reverse proxy, FORWARDED_ALLOW_IPS lists the proxy's addresses
(eventkit.http trusts X-Forwarded-For from them only), so `request.client` is the citizen,
not the proxy: tests/unit/test_complaints_behind_proxy.py.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """`capacity` requests at once, refilled at `capacity` per `per_seconds`."""

    capacity: int
    per_seconds: float

    @property
    def rate(self) -> float:
        return self.capacity / self.per_seconds


# Filing: 5 complaints an hour from one address is generous for a family sharing a phone and
# tiny for a script. Tracking: 30 look-ups a minute. Viewing the form: 60 a minute. The
# form's place look-ups (four a form at most, cached by the browser): 120 a minute.
SUBMIT = Limit(5, 3600.0)
TRACK = Limit(30, 60.0)
VIEW = Limit(60, 60.0)
LOOKUP = Limit(120, 60.0)


class RateLimiter:
    """Token buckets by (limit name, address); the least recently seen are forgotten first."""

    def __init__(
        self, max_clients: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def take(self, name: str, limit: Limit, client: str) -> float:
        """0 when the request may proceed, else the seconds until it may (Retry-After)."""
        now = self.clock()
        key = (name, client)
        tokens, seen = self._buckets.pop(key, (float(limit.capacity), now))
        tokens = min(float(limit.capacity), tokens + (now - seen) * limit.rate)
        if tokens >= 1.0:
            self._remember(key, tokens - 1.0, now)
            return 0.0
        self._remember(key, tokens, now)
        return math.ceil((1.0 - tokens) / limit.rate)

    def _remember(self, key: tuple[str, str], tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        # Forgetting an address refills its bucket: at worst one more burst for it, never a
        # memory that grows with every address that ever called.
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
