"""Debounce: run an actor once per burst of messages for the same key."""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware, SkipMessage

from ..logging import get_logger
from .run_history import bound_arguments, set_outcome

#: Prefix of every debounce key in Redis.  A key for a message that has a
#: ``user_id`` argument contains ``:user:{user_id}:``, so account deletion
#: finds it.
KEY_PREFIX = "wallie:debounce"

#: Extra life of a debounce key beyond its maximum wait, in milliseconds, so a
#: backed-up queue does not outlive the state that decides what runs.
KEY_TTL_MARGIN_MS = 24 * 3_600_000

#: Message option set on the copy that is re-sent to wait for quiet.
RESENT_OPTION = "debounce_resent_from"


@dataclass(frozen=True)
class DebounceOptions:
    """Debounce settings of one actor.

    Parameters:
      key: The name of the argument that identifies a burst (for example
        ``"conversation_id"``), or a function of the message's arguments by
        name that returns the key.
      quiet_ms: Quiet period, in milliseconds: the latest message runs once
        no other message for its key was sent for this long.
      max_wait_ms: Maximum wait, in milliseconds, from the first message of
        a burst: the latest message runs then even if sends go on.
    """

    key: str | Callable[..., object]
    quiet_ms: int
    max_wait_ms: int

    def __post_init__(self) -> None:
        if self.quiet_ms <= 0:
            raise ValueError(f"quiet_ms must be more than 0 (got {self.quiet_ms}).")

        if self.max_wait_ms < self.quiet_ms:
            raise ValueError(
                f"max_wait_ms must be at least quiet_ms ({self.quiet_ms}); "
                f"got {self.max_wait_ms}."
            )


@dataclass(frozen=True)
class Decision:
    """The action for a message: ``run``, ``skip`` (superseded) or ``wait``."""

    action: str
    delay_ms: int = 0
    latest: str = ""


# Given KEYS[1] (the burst hash) and ARGV = message id, now in ms, quiet in
# ms, maximum wait in ms, id of the copy to re-send, TTL in ms.  Returns
# {action, delay_ms, latest id}.  One script so that two workers never both
# decide to run, and a send between the read and the write cannot be lost.
# After a run "latest" is left empty, so an older message of the same burst
# that is processed late is skipped; a missing key (never recorded, or
# expired) lets the message run, because running twice beats never running.
_DECIDE = """
local state = redis.call("HMGET", KEYS[1], "latest", "first", "last")
local latest, first, last = state[1], tonumber(state[2]), tonumber(state[3])
if not latest then
  return {"run", "0", ""}
end
if latest ~= ARGV[1] then
  return {"skip", "0", latest}
end
local now, quiet, max_wait = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local quiet_left = last + quiet - now
local wait_left = first + max_wait - now
if quiet_left <= 0 or wait_left <= 0 then
  redis.call("HSET", KEYS[1], "latest", "")
  redis.call("HDEL", KEYS[1], "first", "last")
  return {"run", "0", ""}
end
redis.call("HSET", KEYS[1], "latest", ARGV[5])
redis.call("PEXPIRE", KEYS[1], ARGV[6])
return {"wait", tostring(math.min(quiet_left, wait_left)), ARGV[5]}
"""

_RECORD = """
redis.call("HSET", KEYS[1], "latest", ARGV[1], "last", ARGV[2])
redis.call("HSETNX", KEYS[1], "first", ARGV[2])
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return 1
"""


class RedisDebounceState:
    """Burst state in Redis, shared by every worker process."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._record = client.register_script(_RECORD)
        self._decide = client.register_script(_DECIDE)

    def record(self, key: str, message_id: str, now_ms: int, ttl_ms: int) -> None:
        self._record(keys=[key], args=[message_id, now_ms, ttl_ms])

    def decide(
        self, key: str, message_id: str, now_ms: int, options: DebounceOptions, resend_id: str
    ) -> Decision:
        ttl_ms = options.max_wait_ms + KEY_TTL_MARGIN_MS
        action, delay, latest = self._decide(
            keys=[key],
            args=[message_id, now_ms, options.quiet_ms, options.max_wait_ms, resend_id, ttl_ms],
        )
        return Decision(_text(action), int(delay), _text(latest))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class MemoryDebounceState:
    """Burst state in this process, for the embedded default.

    With the in-process broker the command that sends the messages also
    runs them, so waiting out a quiet period of minutes would only hold the
    command up.  Here the latest message of a burst runs as soon as it is
    processed and the ones it replaced are skipped.
    """

    def __init__(self) -> None:
        self._latest: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, key: str, message_id: str, now_ms: int, ttl_ms: int) -> None:
        with self._lock:
            self._latest[key] = message_id

    def decide(
        self, key: str, message_id: str, now_ms: int, options: DebounceOptions, resend_id: str
    ) -> Decision:
        with self._lock:
            latest = self._latest.get(key)
            if latest is not None and latest != message_id:
                return Decision("skip", latest=latest)

            self._latest.pop(key, None)
            return Decision("run")


class Debounce(Middleware):
    """Run a debounced actor once per burst, with the latest arguments.

    An actor opts in with ``debounce=DebounceOptions(...)``.  Every send for
    a key restarts the quiet period.  When a message is processed it runs
    only if it is the latest for its key and the key has been quiet for
    ``quiet_ms`` or the burst is ``max_wait_ms`` old.  A latest message that
    comes too early is re-sent with the remaining delay under a new id and
    recorded as ``delayed``; a message that a later one replaced is recorded
    as ``skipped``.  State lives in Redis with the Redis broker and in
    memory with the in-process broker (see :class:`MemoryDebounceState`).

    The setting is resolved as: message option ``debounce`` (``False`` turns
    debouncing off for that message), then the actor option.
    """

    def __init__(self) -> None:
        self.logger = get_logger(__name__, type(self).__name__)
        self.state: RedisDebounceState | MemoryDebounceState | None = None

    @property
    def actor_options(self) -> set[str]:
        return {"debounce"}

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        self._state_for(broker)

    def _state_for(self, broker: dramatiq.Broker) -> RedisDebounceState | MemoryDebounceState:
        if self.state is None:
            if isinstance(broker, RedisBroker):
                self.state = RedisDebounceState(broker.client)
            else:
                self.state = MemoryDebounceState()

        return self.state

    def _options(self, broker: dramatiq.Broker, message: Any) -> DebounceOptions | None:
        if message.options.get("debounce") is False:
            return None

        try:
            actor = broker.get_actor(message.actor_name)
        except dramatiq.ActorNotFound:
            return None

        return actor.options.get("debounce")

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        options = self._options(broker, message)
        if options is None or RESENT_OPTION in message.options or message.options.get("retries"):
            return

        key = burst_key(broker, message, options)
        ttl_ms = options.max_wait_ms + KEY_TTL_MARGIN_MS
        self._state_for(broker).record(key, message.message_id, _now_ms(), ttl_ms)
        self.logger.debug("Recorded message %r as latest for %s.", message.message_id, key)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        options = self._options(broker, message)
        if options is None:
            return

        key = burst_key(broker, message, options)
        resend_id = str(uuid.uuid4())
        decision = self._state_for(broker).decide(
            key, message.message_id, _now_ms(), options, resend_id
        )
        if decision.action == "run":
            return

        if decision.action == "skip":
            if decision.latest:
                reason = f"Superseded by message {decision.latest}."
            else:
                reason = "A later message of its burst already ran."

            self.logger.info("Skipping message %r: %s", message.message_id, reason)
            set_outcome(message, "skipped", reason)
            raise SkipMessage(reason)

        self._resend(broker, message, resend_id, decision.delay_ms)

    def _resend(self, broker: dramatiq.Broker, message: Any, resend_id: str, delay_ms: int) -> None:
        copy = message.copy(
            message_id=resend_id,
            options={RESENT_OPTION: message.message_id, "retries": 0},
        )
        broker.enqueue(copy, delay=delay_ms)
        reason = f"Waiting {delay_ms} milliseconds for quiet; re-sent as message {resend_id}."
        self.logger.info("Delaying message %r: %s", message.message_id, reason)
        set_outcome(message, "delayed", reason)
        raise SkipMessage(reason)


def burst_key(broker: dramatiq.Broker, message: Any, options: DebounceOptions) -> str:
    """Return the Redis key of the message's burst.

    The key contains the actor name, the user id when the actor takes a
    ``user_id`` argument, and the debounce key.
    """
    arguments = bound_arguments(broker, message)
    if not arguments:
        # No arguments, or arguments that do not fit: binding again raises
        # the TypeError that names the mismatch.
        actor = broker.get_actor(message.actor_name)
        arguments = inspect.signature(actor.fn).bind(*message.args, **message.kwargs).arguments

    if callable(options.key):
        value = options.key(**arguments)
    else:
        value = arguments[options.key]

    user_part = f":user:{arguments['user_id']}" if "user_id" in arguments else ""
    return f"{KEY_PREFIX}:{message.actor_name}{user_part}:{value}"


def _now_ms() -> int:
    return int(time.time() * 1000)
