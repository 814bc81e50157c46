"""A small rate limiter: at most `limit` hits per key in any `window` seconds.

Per process and in memory: each web worker process counts on its own, and a restart
forgets everything. That is enough to stop one client from hammering a form (the
subscribe form by client IP); a limit that must hold across workers belongs in the
database (as login failures are kept).

It is a sliding window log: each key keeps the times of its last `limit` allowed hits,
so a burst at the end of one window cannot be followed by a second burst at the start
of the next, as it can with fixed windows. Memory is at most `limit` floats per key,
and keys whose hits are all older than the window are dropped once `max_keys` is
reached. Thread-safe: FastAPI runs sync routes in a thread pool.

The clock is injectable (any `() -> float` in seconds), so tests move time by hand:

    throttle = Throttle(5, 600, clock=lambda: clock().timestamp())
    wait = throttle.hit(client_ip)   # 0.0: allowed and counted; else seconds to wait
    if wait:
        ...answer 429 with Retry-After: retry_after_header(wait)
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Callable


class Throttle:
    """At most `limit` hits per key in any `window` seconds (see the module docstring)."""

    def __init__(self, limit: int, window: float, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"a throttle needs limit >= 1 and window > 0, not {limit}, {window}")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Count a hit for `key` if it is allowed: 0.0 then. Otherwise count nothing and
        return the seconds until the next hit would be allowed (always > 0)."""
        with self._lock:
            now = self._clock()
            wait = self._wait(key, now)
            if wait:
                return wait
            if key not in self._hits and len(self._hits) >= self.max_keys:
                self._prune(now)
            self._hits.setdefault(key, deque(maxlen=self.limit)).append(now)
            return 0.0

    def peek(self, key: str) -> float:
        """What `hit` would answer, counting nothing: for checking before work whose
        outcome decides whether it counts (a login counts only when it fails)."""
        with self._lock:
            return self._wait(key, self._clock())

    def reset(self, key: str) -> None:
        """Forget `key`'s hits (say, after a successful login)."""
        with self._lock:
            self._hits.pop(key, None)

    def _wait(self, key: str, now: float) -> float:
        hits = self._hits.get(key)
        if hits is None or len(hits) < self.limit:
            return 0.0
        # Full: the oldest of the last `limit` hits must leave the window first.
        wait = hits[0] + self.window - now
        return wait if wait > 0 else 0.0

    def _prune(self, now: float) -> None:
        """Drop keys whose newest hit has left the window; if every key is still
        active, drop the oldest-hit half, so memory stays bounded under a flood of
        addresses (which only weakens the limit for those forgotten)."""
        stale = [k for k, hits in self._hits.items() if hits[-1] + self.window <= now]
        for key in stale:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:
            by_age = sorted(self._hits, key=lambda k: self._hits[k][-1])
            for key in by_age[: len(by_age) // 2 + 1]:
                del self._hits[key]


def retry_after_header(wait: float) -> str:
    """`wait` seconds as a Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait)))


def client_key(host: str) -> str:
    """What a per-client limit counts by: an IPv4 address as it is, an IPv6 address by
    its /64. One home or phone is given a whole /64, so counting single IPv6 addresses
    would let one client draw a fresh address for every try."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # "testclient", or no address at all
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
