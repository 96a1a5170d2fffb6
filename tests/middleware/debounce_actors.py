"""Actors for the debounce tests that run in separate worker processes.

``dramatiq tests.middleware.debounce_actors`` imports this module; it builds
the broker from the environment like the ``actors`` package does.
"""

from __future__ import annotations

import os

import dramatiq
import redis

from wallie.broker import setup_broker
from wallie.middleware.debounce import DebounceOptions

broker = setup_broker()
_calls = redis.Redis.from_url(os.environ["REDIS_URL"])

QUIET_MS = int(os.environ.get("TEST_QUIET_MS", "800"))
MAX_WAIT_MS = int(os.environ.get("TEST_MAX_WAIT_MS", "2500"))


@dramatiq.actor(debounce=DebounceOptions("conversation_id", QUIET_MS, MAX_WAIT_MS))
def rescore(conversation_id: int, version: int) -> None:
    _calls.rpush(f"calls:{conversation_id}", version)
