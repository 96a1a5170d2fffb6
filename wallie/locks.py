"""Non-blocking exclusive locks: in Redis when it is configured, else in-process.

With ``REDIS_URL`` set, :func:`exclusive` takes a lock with redis-py's
:class:`redis.lock.Lock`, which sets the key with ``SET NX PX`` and a random
token, and releases it with a script that deletes the key only while it still
holds that token. So a worker whose lock expired cannot release the lock that
another worker took since. Without Redis (the embedded default) every job runs
in this process, so a process-local :class:`threading.Lock` per key is enough.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError

from .logging import get_logger
from .settings import Settings

logger = get_logger(__name__)

#: Prefix of every lock key in Redis.
KEY_PREFIX = "wallie:lock:"

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def _redis_client(url: str) -> redis.Redis:
    with _local_guard:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url)
            _clients[url] = client

        return client


def _local_lock(key: str) -> threading.Lock:
    with _local_guard:
        lock = _local_locks.get(key)
        if lock is None:
            lock = threading.Lock()
            _local_locks[key] = lock

        return lock


@contextmanager
def exclusive(settings: Settings, key: str, ttl_ms: int) -> Iterator[bool]:
    """Try to take the lock ``key`` without waiting, and release it on exit.

    Parameters:
      settings: Decide between Redis and a process-local lock.
      key: Name of the lock, without :data:`KEY_PREFIX`.
      ttl_ms: How long the Redis lock lives if its holder dies, in milliseconds.
        Choose more than the longest time the holder runs. The process-local
        lock has no expiry because it dies with its process.

    Returns:
      A context manager that yields whether this caller holds the lock. A caller
      that gets ``False`` must not do the guarded work.
    """
    if settings.redis_url is None:
        with _hold_local(key) as acquired:
            yield acquired
    else:
        with _hold_redis(settings.redis_url, key, ttl_ms) as acquired:
            yield acquired


@contextmanager
def _hold_local(key: str) -> Iterator[bool]:
    lock = _local_lock(key)
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


@contextmanager
def _hold_redis(url: str, key: str, ttl_ms: int) -> Iterator[bool]:
    client = _redis_client(url)
    lock = client.lock(f"{KEY_PREFIX}{key}", timeout=ttl_ms / 1000, blocking=False)
    acquired = bool(lock.acquire())
    try:
        yield acquired
    finally:
        if acquired:
            _release(lock, key)


def _release(lock: redis.lock.Lock, key: str) -> None:
    try:
        lock.release()
    except LockError:
        # The lock expired while held, and another holder may own it now. The
        # release script left that holder's key in place.
        logger.warning("Lock %s expired before it was released.", key)
