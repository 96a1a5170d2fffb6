"""Monthly usage by provider and actor, against a user's caps or the deployment ceiling.

The sums read ``usage_record`` directly: see :mod:`wallie.safety` for why
no rollup table is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import peewee

from .db.models import UsageRecord, User
from .limits import limit_for
from .settings import Settings
from .usage import next_month_start

#: Caps and ceilings that monthly usage records can be compared with; the
#: daily caps are counted by the glass ceiling in Redis instead.
MONTHLY_LIMITS = ("tokens_per_month", "transcription_minutes_per_month", "cost_ceiling_usd")

#: Precision of the dollar sums; SQLite sums to a float, PostgreSQL to six places.
COST_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class UsageRow:
    """Usage of one provider by one actor over the month."""

    provider: str
    actor: str
    calls: int
    tokens: int
    audio_minutes: Decimal
    cost_usd: Decimal


@dataclass(frozen=True)
class LimitUse:
    """How much of one cap or ceiling is used; ``percent`` is None for a zero limit."""

    name: str
    used: Decimal
    limit: Decimal

    @property
    def percent(self) -> Decimal | None:
        if self.limit <= 0:
            return None

        return (self.used * 100 / self.limit).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class UsageSummary:
    """A month of usage of one user, or of the whole deployment for ``user=None``."""

    month: str
    user: User | None
    rows: list[UsageRow]
    limits: list[LimitUse]

    def by_provider(self) -> list[UsageRow]:
        """Return one row per provider, with the actors' usage added up."""
        totals: dict[str, UsageRow] = {}
        for row in self.rows:
            old = totals.get(row.provider)
            totals[row.provider] = row if old is None else _add(old, row, actor="")

        return [
            UsageRow(row.provider, "", row.calls, row.tokens, row.audio_minutes, row.cost_usd)
            for _, row in sorted(totals.items())
        ]

    def total(self) -> UsageRow:
        """Return the month's usage over every provider and actor."""
        total = UsageRow("", "", 0, 0, Decimal(0), Decimal(0))
        for row in self.rows:
            total = _add(total, row, actor="")

        return total


def parse_month(text: str) -> datetime:
    """Return the first instant (UTC) of the month ``YYYY-MM``.

    Raises:
      ValueError: ``text`` is not a month in that form.
    """
    try:
        moment = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise ValueError(f"{text!r} is not a month; use YYYY-MM, for example 2026-12.") from None

    return moment.replace(tzinfo=UTC)


def usage_rows(user_id: int | None, start: datetime) -> list[UsageRow]:
    """Return the usage of the month starting at ``start``, by provider and actor."""
    tokens = UsageRecord.tokens_in + UsageRecord.tokens_out
    query = (
        UsageRecord.select(
            UsageRecord.provider,
            UsageRecord.actor,
            _sum(UsageRecord.calls).alias("calls"),
            _sum(tokens).alias("tokens"),
            _sum(UsageRecord.audio_seconds).alias("audio_seconds"),
            _sum(UsageRecord.cost_usd).alias("cost"),
        )
        .where(
            (UsageRecord.created_at >= start)
            & (UsageRecord.created_at < next_month_start(start))
        )
        .group_by(UsageRecord.provider, UsageRecord.actor)
        .order_by(UsageRecord.provider, UsageRecord.actor)
        .tuples()
    )
    if user_id is not None:
        query = query.where(UsageRecord.user == user_id)

    return [
        UsageRow(
            provider,
            actor,
            int(calls or 0),
            int(tokens_used or 0),
            (Decimal(int(seconds or 0)) / 60).quantize(Decimal("0.01")),
            Decimal(str(cost or 0)).quantize(COST_QUANTUM),
        )
        for provider, actor, calls, tokens_used, seconds, cost in query
    ]


def summarize(user: User | None, start: datetime, settings: Settings) -> UsageSummary:
    """Return the month's usage of ``user`` (or the deployment) with its limits."""
    rows = usage_rows(user.id if user is not None else None, start)
    summary = UsageSummary(start.strftime("%Y-%m"), user, rows, [])
    total = summary.total()
    if user is None:
        limits = [LimitUse("deployment_cost_ceiling_usd", total.cost_usd,
                           settings.deployment_cost_ceiling_usd)]
    else:
        used = {
            "tokens_per_month": Decimal(total.tokens),
            "transcription_minutes_per_month": total.audio_minutes,
            "cost_ceiling_usd": total.cost_usd,
        }
        limits = [LimitUse(name, used[name], limit_for(user, name)) for name in MONTHLY_LIMITS]

    return UsageSummary(summary.month, user, rows, limits)


def _sum(expression: peewee.Node) -> peewee.Node:
    return peewee.fn.COALESCE(peewee.fn.SUM(expression), 0)


def _add(left: UsageRow, right: UsageRow, *, actor: str) -> UsageRow:
    return UsageRow(
        left.provider or right.provider,
        actor,
        left.calls + right.calls,
        left.tokens + right.tokens,
        left.audio_minutes + right.audio_minutes,
        left.cost_usd + right.cost_usd,
    )
