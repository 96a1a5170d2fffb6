"""The glass ceiling: rate limits, usage caps and cost ceilings for actors."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware, MiddlewareError, SkipMessage
from dramatiq.rate_limits import ConcurrentRateLimiter, RateLimiterBackend
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

from ..db.fields import utcnow
from ..db.models import User
from ..limits import PROVIDERS, ProviderLimits, Window, limit_for, provider_limits
from ..logging import get_logger
from ..settings import Settings
from ..usage import (
    deployment_month_cost,
    month_audio_minutes,
    month_cost,
    month_tokens,
    next_month_start,
    warn_about_cost,
)
from .counters import BoundedCounters
from .run_history import bound_arguments, note, set_outcome

#: Prefix of every glass ceiling key in the rate limiter backend.  Keys for
#: one user contain ``:user:{user_id}:``, so account deletion finds them.
KEY_PREFIX = "wallie:limit"

#: How far ahead a message may reserve a rate window before it is deferred.
MAX_WINDOWS_AHEAD = 10_000

#: Maximum delay the embedded default waits in-process, in milliseconds; a
#: longer one is recorded as deferred, because the command would hang.
EMBEDDED_MAX_DELAY_MS = 60_000

#: Delay before a message that found every concurrency slot taken tries
#: again, in milliseconds (a random value in this range, to spread retries).
CONCURRENCY_RETRY_MS = (250, 2_000)

#: Time-to-live of a concurrency slot, in milliseconds: a worker killed
#: mid-run frees its slot after this long.
CONCURRENCY_TTL_MS = 15 * 60_000


class InvalidActorLimits(MiddlewareError, ValueError):
    """Raised when an actor declares ``limits`` that are not an :class:`ActorLimits`."""


@dataclass(frozen=True)
class ActorLimits:
    """Limits that the glass ceiling applies to one actor.

    Parameters:
      provider: The provider whose rate limits apply (``openai``, ``gmail``,
        ``graph``, ``whatsapp``, ``smtp``).
      per: What the rate limits are counted per: ``user``, ``mailbox``
        (the ``mailbox_id`` argument) or ``deployment``.
      units: Units one run uses in each of the provider's windows, by window
        name; windows not named use 1.
      cap: A usage cap of the user's plan that one run counts against.
      paid: True when runs cost money and stop at the cost ceiling.
      degrade: Keyword arguments that switch the actor to its unpaid path
        (for example ``{"engine": "offline"}``); without them, work over a
        cap or ceiling is deferred instead.
    """

    provider: str
    per: str = "user"
    units: dict[str, int] = field(default_factory=dict)
    cap: str | None = None
    paid: bool = False
    degrade: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(
                f"Unknown provider {self.provider!r}; valid providers: {', '.join(PROVIDERS)}."
            )

        if self.per not in ("user", "mailbox", "deployment"):
            raise ValueError(f"per must be user, mailbox or deployment (got {self.per!r}).")

        negative = {name: value for name, value in self.units.items() if value < 0}
        if negative:
            raise ValueError(f"units must be 0 or more (got {negative}).")


@dataclass(frozen=True)
class _Verdict:
    """The reason a message cannot run now, and the action to take."""

    action: str
    reason: str
    limit: str
    until: datetime | None = None
    delay_ms: int = 0


class GlassCeiling(Middleware):
    """Keep actors inside provider rate limits, plan caps and cost ceilings.

    An actor opts in with ``limits=ActorLimits(...)``; a message can opt out
    with the option ``limits=False`` (operators' manual runs).  Checks run in
    this order: paused user and cost ceiling (paid actors), usage cap, rate
    windows, concurrency.

    - Over a rate window or concurrency limit: the message is sent again,
      with the same id and the same retry count, delayed until its reserved
      window or a short random wait.  It is recorded as ``delayed``, never
      as a failure, and uses none of its retries.
    - Over a cap, the ceiling, or while the user's paid work is paused: the
      actor's ``degrade`` arguments are applied and it runs (noted in run
      history), or without them the message is deferred until the cap
      resets.

    Note:
      With the in-process broker a deferral, or a delay longer than
      :data:`EMBEDDED_MAX_DELAY_MS`, is recorded as ``deferred`` and not
      sent again, because the command would wait for it; replay it with
      ``wallie-cli replay`` once the limit resets.
    """

    def __init__(self, settings: Settings) -> None:
        self.logger = get_logger(__name__, type(self).__name__)
        self.settings = settings
        self.providers = provider_limits(settings)
        self.backend: RateLimiterBackend | None = None
        self._counters: BoundedCounters | None = None
        self.embedded = settings.redis_url is None
        self._held: dict[int, ConcurrentRateLimiter] = {}
        self._held_lock = threading.Lock()
        self._frontier: dict[str, int] = {}

    @property
    def actor_options(self) -> set[str]:
        return {"limits"}

    def before_declare_actor(self, broker: dramatiq.Broker, actor: Any) -> None:
        limits = actor.options.get("limits")
        if limits is not None and not isinstance(limits, ActorLimits):
            raise InvalidActorLimits(
                f"Actor {actor.actor_name!r}: limits must be an ActorLimits (got {limits!r})."
            )

    def _backend(self, broker: dramatiq.Broker) -> RateLimiterBackend:
        if self.backend is None:
            if isinstance(broker, RedisBroker):
                self.backend = RedisBackend(client=broker.client)
            else:
                self.backend = StubBackend()

        return self.backend

    def _counters_for(self, broker: dramatiq.Broker) -> BoundedCounters:
        if self._counters is None:
            self._counters = BoundedCounters(self._backend(broker))

        return self._counters

    # Hooks.

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        limits = self._limits(broker, message)
        if limits is None:
            return

        if _is_degraded(message, limits):
            return

        arguments = _arguments(broker, message)
        user_id = _user_id(arguments)
        verdict = None
        if user_id is not None and (limits.paid or limits.cap is not None):
            # Only the ceiling and the caps read the user row.
            user = User.get_or_none(User.id == user_id)
            user_id = user.id if user is not None else None
            verdict = self._check_paid_and_caps(broker, message, limits, user)

        if verdict is None:
            verdict = self._check_rates(broker, message, limits, arguments)

        if verdict is None:
            verdict = self._check_concurrency(broker, message, limits, arguments)

        if verdict is not None:
            self._act(broker, message, limits, verdict, user_id)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._release(message)
        if exception is not None:
            # A retry must reserve its own rate slot; this hook runs before
            # Retries copies the message.
            message.options.pop("glass_ceiling_slots", None)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._release(message)

    # Checks.

    def _limits(self, broker: dramatiq.Broker, message: Any) -> ActorLimits | None:
        if message.options.get("limits") is False:
            return None

        try:
            return broker.get_actor(message.actor_name).options.get("limits")
        except dramatiq.ActorNotFound:
            return None

    def _check_paid_and_caps(
        self, broker: dramatiq.Broker, message: Any, limits: ActorLimits, user: User | None
    ) -> _Verdict | None:
        if user is None:
            return None

        now = utcnow()
        if limits.paid:
            verdict = self._check_ceiling(user, now)
            if verdict is not None:
                return verdict

        if limits.cap is not None:
            return self._check_cap(broker, message, limits.cap, user, now)

        return None

    def _check_ceiling(self, user: User, now: datetime) -> _Verdict | None:
        if user.paid_work_paused_until is not None and user.paid_work_paused_until > now:
            reason = f"Paid work of user {user.id} is paused: {user.pause_reason}"
            return _Verdict("defer", reason, "pause", until=user.paid_work_paused_until)

        ceiling = limit_for(user, "cost_ceiling_usd")
        spent = month_cost(user.id)
        if spent >= ceiling:
            warn_about_cost(user)
            reason = f"User {user.id} spent ${spent:.2f} of a ${ceiling:.2f} monthly ceiling."
            return _Verdict("defer", reason, "cost_ceiling_usd", until=next_month_start(now))

        deployment_spent = deployment_month_cost()
        if deployment_spent >= self.settings.deployment_cost_ceiling_usd:
            reason = (
                f"The deployment spent ${deployment_spent:.2f} of its "
                f"${self.settings.deployment_cost_ceiling_usd:.2f} monthly ceiling."
            )
            return _Verdict("defer", reason, "deployment_cost_ceiling_usd", until=next_month_start(now))

        return None

    def _check_cap(
        self, broker: dramatiq.Broker, message: Any, cap: str, user: User, now: datetime
    ) -> _Verdict | None:
        limit = limit_for(user, cap)
        if cap.endswith("_per_day"):
            return self._count_cap(broker, message, cap, limit, user, now)

        used: Decimal | int
        if cap == "tokens_per_month":
            used = month_tokens(user.id)
        elif cap == "transcription_minutes_per_month":
            used = month_audio_minutes(user.id)
        else:
            raise ValueError(f"Cap {cap!r} has no meter.")

        if used < limit:
            return None

        reason = f"User {user.id} used {used} of {limit} ({cap})."
        return _Verdict("defer", reason, cap, until=next_month_start(now))

    def _count_cap(
        self, broker: dramatiq.Broker, message: Any, cap: str, limit: Decimal, user: User,
        now: datetime,
    ) -> _Verdict | None:
        day = now.strftime("%Y-%m-%d")
        if message.options.get("glass_ceiling_counted") == day:
            return None

        key = f"{KEY_PREFIX}:cap:user:{user.id}:{cap}:{day}"
        ttl_ms = 2 * 86_400_000
        if self._counters_for(broker).add(key, 1, int(limit), ttl_ms):
            # A message delayed later by a rate limit comes back with this
            # mark, so one run counts once against the cap.
            message.options["glass_ceiling_counted"] = day
            return None

        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        reason = f"User {user.id} reached {int(limit)} ({cap}) for {day}."
        return _Verdict("defer", reason, cap, until=tomorrow)

    def _check_rates(
        self, broker: dramatiq.Broker, message: Any, limits: ActorLimits, arguments: dict[str, Any]
    ) -> _Verdict | None:
        provider = self.providers[limits.provider]
        reserved = message.options.get("glass_ceiling_slots") or {}
        now_ms = int(utcnow().timestamp() * 1000)
        slots: dict[str, int] = {}
        wait_ms = 0
        for window in provider.windows:
            key = _scope_key(provider, window.name, limits, arguments)
            slot = reserved.get(key)
            if slot is None:
                slot = self._reserve(broker, key, window, limits.units.get(window.name, 1), now_ms)

            if slot is None:
                reason = f"No free {window.name} slot of {limits.provider} in {MAX_WINDOWS_AHEAD} windows."
                return _Verdict("defer", reason, f"{limits.provider}.{window.name}",
                                until=utcnow() + timedelta(milliseconds=MAX_WINDOWS_AHEAD * window.window_ms))

            slots[key] = slot
            wait_ms = max(wait_ms, slot * window.window_ms - now_ms)

        if wait_ms <= 0:
            return None

        message.options["glass_ceiling_slots"] = slots
        jitter = random.randint(0, max(1, min(wait_ms, 1_000) // 10))
        names = ", ".join(window.name for window in provider.windows)
        reason = f"Rate limit of {limits.provider} ({names}) reached; next slot in {wait_ms} milliseconds."
        return _Verdict("delay", reason, f"{limits.provider}.rate", delay_ms=wait_ms + jitter)

    def _reserve(
        self, broker: dramatiq.Broker, key: str, window: Window, units: int, now_ms: int
    ) -> int | None:
        """Reserve ``units`` in the earliest window with room; return its index."""
        if units == 0:
            return now_ms // window.window_ms

        counters = self._counters_for(broker)
        current = now_ms // window.window_ms
        index = max(current, self._frontier.get(key, current))
        ttl_ms = window.window_ms * 2
        for _ in range(MAX_WINDOWS_AHEAD):
            slot_key = f"{key}:{index}"
            window_ttl = (index - current) * window.window_ms + ttl_ms
            if counters.add(slot_key, units, window.limit, window_ttl):
                return index

            index += 1
            self._frontier[key] = index

        return None

    def _check_concurrency(
        self, broker: dramatiq.Broker, message: Any, limits: ActorLimits, arguments: dict[str, Any]
    ) -> _Verdict | None:
        provider = self.providers[limits.provider]
        if provider.concurrency is None:
            return None

        key = _scope_key(provider, "concurrent", limits, arguments)
        limiter = ConcurrentRateLimiter(
            self._backend(broker), key, limit=provider.concurrency, ttl=CONCURRENCY_TTL_MS
        )
        # ConcurrentRateLimiter offers acquire() only as a context manager around
        # one block. A middleware keeps the slot across two hooks, so it calls
        # the limiter's own _acquire/_release (present in Dramatiq 1.x and 2.2).
        if limiter._acquire():
            with self._held_lock:
                self._held[id(message)] = limiter

            return None

        delay_ms = random.randint(*CONCURRENCY_RETRY_MS)
        reason = f"All {provider.concurrency} concurrent {limits.provider} slots are taken."
        return _Verdict("delay", reason, f"{limits.provider}.concurrent", delay_ms=delay_ms)

    def _release(self, message: Any) -> None:
        with self._held_lock:
            limiter = self._held.pop(id(message), None)

        if limiter is not None:
            limiter._release()

    # Actions.

    def _act(
        self, broker: dramatiq.Broker, message: Any, limits: ActorLimits, verdict: _Verdict,
        user_id: int | None,
    ) -> None:
        if verdict.action == "defer" and limits.degrade is not None:
            message.kwargs.update(limits.degrade)
            note(message, f"Degraded: {verdict.reason}")
            self.logger.warning(
                "Degrading message %r of actor %r for user %r: limit %s reached.",
                message.message_id, message.actor_name, user_id, verdict.limit,
            )
            return

        self._release(message)
        if verdict.action == "delay" and not (
            self.embedded and verdict.delay_ms > EMBEDDED_MAX_DELAY_MS
        ):
            broker.enqueue(message.copy(), delay=verdict.delay_ms)
            self.logger.info(
                "Delaying message %r of actor %r for user %r by %d milliseconds: limit %s.",
                message.message_id, message.actor_name, user_id, verdict.delay_ms, verdict.limit,
            )
            set_outcome(message, "delayed", verdict.reason)
            raise SkipMessage(verdict.reason)

        self._defer(broker, message, verdict, user_id)

    def _defer(self, broker: dramatiq.Broker, message: Any, verdict: _Verdict, user_id: int | None) -> None:
        until = verdict.until or utcnow() + timedelta(milliseconds=verdict.delay_ms)
        delay_ms = max(0, int((until - utcnow()).total_seconds() * 1000))
        reason = f"{verdict.reason} Deferred until {until.isoformat()}."
        if self.embedded:
            reason += " Replay it then with: wallie-cli replay " + message.message_id
        else:
            broker.enqueue(message.copy(options={"glass_ceiling_slots": {}}), delay=delay_ms)

        self.logger.warning(
            "Deferring message %r of actor %r for user %r until %s: limit %s.",
            message.message_id, message.actor_name, user_id, until.isoformat(), verdict.limit,
        )
        set_outcome(message, "deferred", reason)
        raise SkipMessage(reason)


def _arguments(broker: dramatiq.Broker, message: Any) -> dict[str, Any]:
    return bound_arguments(broker, message)


def _user_id(arguments: dict[str, Any]) -> int | None:
    user_id = arguments.get("user_id")
    return user_id if isinstance(user_id, int) else None


def _is_degraded(message: Any, limits: ActorLimits) -> bool:
    if not limits.degrade:
        return False

    return all(message.kwargs.get(name) == value for name, value in limits.degrade.items())


def _scope_key(provider: ProviderLimits, window: str, limits: ActorLimits, arguments: dict[str, Any]) -> str:
    if limits.per == "user":
        scope = f"user:{arguments.get('user_id')}"
    elif limits.per == "mailbox":
        scope = f"mailbox:{arguments.get('mailbox_id')}"
        if "user_id" in arguments:
            scope = f"user:{arguments['user_id']}:{scope}"
    else:
        scope = "deployment"

    return f"{KEY_PREFIX}:{provider.provider}:{scope}:{window}"
