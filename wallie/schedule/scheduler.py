"""The scheduler process: periodiq's scheduler, on a UTC clock, sending each tick once.

:class:`Scheduler` keeps periodiq's actor option (``periodic=cron(...)``)
and its middleware, and changes three things:

- Every cron is read in UTC (:mod:`wallie.schedule.cron`), so DST changes
  neither skip nor repeat a run.  Jobs that follow a user's local time
  run from a frequent UTC tick instead (:mod:`wallie.schedule.local`).
- Each tick is claimed before it is sent (:mod:`wallie.schedule.ticks`), so
  several scheduler processes send it once.
- Once a minute it sends, for each actor, the newest tick not yet claimed.
  After downtime that is one catch-up message per actor, however many
  ticks were missed; an actor with no claimed tick at all starts at its
  next tick.

Each message carries ``scheduled_at`` (when it was sent, which periodiq's
middleware measures queue wait against) and ``tick_at`` (the cron tick it
stands for).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import periodiq
import redis

from ..db.fields import utcnow
from ..logging import get_logger
from ..settings import Settings
from .cron import floor_minute, next_tick, previous_tick
from .ticks import claim_tick, last_ticks, mark_sent, prune_ticks, release_tick

logger = get_logger(__name__, "Scheduler")

#: Delay after a minute starts before the scheduler wakes, in seconds, so a
#: clock that wakes a little early still lands in the new minute.
WAKE_MARGIN_S = 0.2


@dataclass(frozen=True)
class SentTick:
    """One tick this scheduler claimed and sent."""

    actor: str
    tick_at: datetime
    message_id: str
    catch_up: bool


def periodic_actors(broker: dramatiq.Broker) -> list[dramatiq.Actor[Any, Any]]:
    """Return the actors of ``broker`` that have a ``periodic`` cron, by name."""
    actors = [broker.get_actor(name) for name in sorted(broker.get_declared_actors())]
    return [actor for actor in actors if "periodic" in actor.options]


class Scheduler(periodiq.Scheduler):
    """Send the ticks of periodic actors once, in UTC, catching up after downtime.

    Parameters:
      actors: The periodic actors to schedule.
      broker: Where messages go; each scheduler may have its own connection.
      settings: Decide whether ticks are also claimed in Redis.
      clock: Current time as an aware datetime; tests pass a fake one.
    """

    def __init__(
        self,
        actors: Sequence[dramatiq.Actor[Any, Any]],
        *,
        broker: dramatiq.Broker,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(actors=list(actors))
        self.broker = broker
        self.clock = clock
        self.redis_client = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        self._last: dict[str, datetime] = {}
        self._started = False
        self._stopping = threading.Event()

    def start(self) -> None:
        """Read the newest claimed tick of each actor, where catch-up starts."""
        self._last = last_ticks([actor.actor_name for actor in self.actors])
        self._started = True

    def tick(self, now: datetime | None = None) -> list[SentTick]:
        """Send each actor's newest unclaimed tick at or before ``now``.

        Returns the ticks this scheduler sent; ticks that another scheduler
        claimed first are left out.
        """
        if not self._started:
            self.start()

        now = floor_minute(now or self.clock())
        sent = []
        for actor in self.actors:
            result = self._tick_actor(actor, now)
            if result is not None:
                sent.append(result)

        if now.minute == 0:
            prune_ticks(now)

        return sent

    def _tick_actor(self, actor: dramatiq.Actor[Any, Any], now: datetime) -> SentTick | None:
        name = actor.actor_name
        due = previous_tick(actor.options["periodic"], now)
        last = self._last.get(name)
        if due is None or (last is not None and due <= last):
            return None

        if last is None and due != now:
            # No tick of this actor was ever claimed: start at the next one
            # rather than fire on the first deploy.
            self._last[name] = due
            return None

        catch_up = due != now
        claimed = claim_tick(name, due, redis_client=self.redis_client, catch_up=catch_up)
        self._last[name] = due
        if claimed is None:
            return None

        message = actor.message_with_options(
            scheduled_at=now.isoformat(), tick_at=due.isoformat()
        )
        try:
            self.broker.enqueue(message)
        except Exception:
            # Give the tick back so the next minute sends it as a catch-up.
            release_tick(claimed, redis_client=self.redis_client)
            self._last[name] = last if last is not None else due - timedelta(minutes=1)
            raise

        mark_sent(claimed, message.message_id)
        level = logger.warning if catch_up else logger.info
        level(
            "Sent %s for tick %s%s (message %s).",
            name,
            due.isoformat(),
            " as a catch-up" if catch_up else "",
            message.message_id,
        )
        return SentTick(name, due, message.message_id, catch_up)

    def next_run(self, actor: dramatiq.Actor[Any, Any], after: datetime | None = None) -> datetime | None:
        """Return the next UTC tick of ``actor`` after ``after`` (default: now)."""
        return next_tick(actor.options["periodic"], after or self.clock())

    def schedule(self) -> None:
        """Send the due ticks, then wait until the next minute starts.

        This replaces periodiq's version, which reads ``pendulum.now()`` in
        the host's time zone and waits with ``SIGALRM``.
        """
        self.tick()
        now = self.clock()
        wake = floor_minute(now) + timedelta(minutes=1, seconds=WAKE_MARGIN_S)
        self._stopping.wait(max((wake - now).total_seconds(), 0.0))

    def loop(self) -> None:
        """Run :meth:`schedule` until :meth:`stop` is called."""
        while not self._stopping.is_set():
            try:
                self.schedule()
            except Exception:
                # A database or Redis outage must not end the scheduler: the
                # missed ticks are caught up once it is reachable again.
                logger.exception("Scheduling failed; retrying in a minute.")
                self._stopping.wait(60)

    def stop(self, *_: object) -> None:
        """Make :meth:`loop` return after the current minute's work."""
        self._stopping.set()
