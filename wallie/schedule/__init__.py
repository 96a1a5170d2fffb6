"""Scheduling on top of periodiq: UTC crons, each tick once, per-user local times.

- :mod:`.cron`: tick arithmetic in UTC over periodiq's ``CronSpec``.
- :mod:`.ticks`: claim a tick once across scheduler processes (Redis and
  the database).
- :mod:`.scheduler`: the scheduler process, with catch-up after downtime.
- :mod:`.local`: per-user jobs at a local time of day or week.
"""

from __future__ import annotations

#: How long a periodic message may wait in its queue before periodiq's
#: middleware skips it, in seconds.  periodiq's default of 30 s drops ticks
#: whenever a queue is busy; every periodic actor here finds all due work
#: itself, so a late run is still wanted, and after a day the next tick
#: has long been queued behind it.
QUEUE_WAIT_LIMIT_S = 86_400
