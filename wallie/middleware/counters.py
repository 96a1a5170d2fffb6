"""Counters with a maximum, on Dramatiq's rate limiter backends."""

from __future__ import annotations

from dramatiq.rate_limits import RateLimiterBackend
from dramatiq.rate_limits.backends import RedisBackend

# Given KEYS[1] (the counter) and ARGV = amount, maximum, TTL in ms.  Adds
# the amount and returns 1, unless the sum would pass the maximum: then it
# returns 0 and leaves the counter alone.  The counter is the plain integer
# string that Dramatiq's RedisBackend.add and .incr store (Dramatiq 2.2),
# and like .incr a successful add sets the TTL again.
_ADD_WITHIN = """
local value = tonumber(redis.call("GET", KEYS[1]) or "0")
local total = value + tonumber(ARGV[1])
if total > tonumber(ARGV[2]) then
  return 0
end
redis.call("SET", KEYS[1], total, "PX", ARGV[3])
return 1
"""


class BoundedCounters:
    """Add to counters in a rate limiter backend without passing a maximum.

    On Redis one script call does the work of the backend's ``add`` and
    ``incr``, which cost up to five round trips (``SET NX``, then ``WATCH``,
    ``GET`` and a ``MULTI``/``EXEC`` transaction).  Other backends go
    through ``add`` and ``incr``.
    """

    def __init__(self, backend: RateLimiterBackend) -> None:
        self.backend = backend
        self._script = None
        if isinstance(backend, RedisBackend):
            self._script = backend.client.register_script(_ADD_WITHIN)

    def add(self, key: str, amount: int, maximum: int, ttl_ms: int) -> bool:
        """Add ``amount`` to counter ``key`` unless the sum passes ``maximum``.

        Returns True when the amount was added.  ``ttl_ms`` is the counter's
        time to live after a successful add, in milliseconds.
        """
        if amount > maximum:
            return False

        if self._script is not None:
            return bool(self._script(keys=[key], args=[amount, maximum, ttl_ms]))

        return bool(
            self.backend.add(key, amount, ttl=ttl_ms)
            or self.backend.incr(key, amount, maximum=maximum, ttl=ttl_ms)
        )
