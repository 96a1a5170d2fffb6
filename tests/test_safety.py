"""Tests for the safety limiter: cost notices, runaway pauses and lifting pauses."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import dramatiq
import pytest

from wallie.broker import run_embedded
from wallie.db.fields import utcnow
from wallie.db.models import AuditLog, JobRun, OutboxItem, UsageRecord, User
from wallie.safety import (
    PAUSE_CEILING,
    PAUSE_OPERATOR,
    RUNAWAY_ACTION,
    RUNAWAY_PAUSE_HOURS,
    clear_passed_pauses,
    find_runaways,
    run_safety_checks,
)
from wallie.usage import month_start

NOW = utcnow().replace(minute=30, second=0, microsecond=0)


def usage(user: User, at: datetime, *, calls: int = 1, cost: str = "0") -> None:
    UsageRecord.create(
        user=user, provider="openai", actor="analyze", calls=calls,
        cost_usd=Decimal(cost), created_at=at,
    )


def spread(user: User, *, calls_per_hour: int, hours: int = 7 * 24, cost: str = "0") -> None:
    """Record usage every hour of the week before the last hour."""
    for hour in range(2, hours + 1):
        usage(user, NOW - timedelta(hours=hour), calls=calls_per_hour, cost=cost)


def runaway_notices(user: User) -> list[OutboxItem]:
    return list(OutboxItem.select().where(OutboxItem.idempotency_key.startswith(f"runaway:{user.id}:")))


@pytest.fixture
def ana(db) -> User:
    return User.create(email="ana@example.com", plan="pro")


def test_runaway_pauses_once_and_notifies_once(ana: User, caplog: pytest.LogCaptureFixture) -> None:
    # Given a user who usually makes 5 calls an hour and made 400 in the last one
    spread(ana, calls_per_hour=5)
    usage(ana, NOW - timedelta(minutes=10), calls=400)

    # When the limiter runs twice, five minutes apart
    with caplog.at_level(logging.WARNING, logger="wallie.safety"):
        first = run_safety_checks(NOW)

    second = run_safety_checks(NOW + timedelta(minutes=5))

    # Then the user was paused once, for six hours, with one notice and one audit row
    ana = User.get_by_id(ana.id)
    assert first.paused_user_ids == [ana.id]
    assert second.paused_user_ids == []
    assert ana.paid_work_paused_until == NOW + timedelta(hours=RUNAWAY_PAUSE_HOURS)
    assert ana.pause_reason.startswith("runaway:")
    assert len(runaway_notices(ana)) == 1
    assert runaway_notices(ana)[0].idempotency_key == f"runaway:{ana.id}:{NOW:%Y-%m-%dT%H}"
    assert AuditLog.select().where(AuditLog.action == RUNAWAY_ACTION).count() == 1
    assert f"user {ana.id}" in caplog.text
    assert "400 calls" in caplog.text


def test_runaway_episode_not_paused_again_after_pause(ana: User) -> None:
    # Given a runaway who was paused
    spread(ana, calls_per_hour=5)
    usage(ana, NOW - timedelta(minutes=10), calls=400)
    run_safety_checks(NOW)

    # When the pause has passed and the limiter runs again within the hour window
    later = NOW + timedelta(hours=RUNAWAY_PAUSE_HOURS, minutes=1)
    usage(ana, later - timedelta(minutes=30), calls=3)
    report = run_safety_checks(later)

    # Then the pause is lifted and the usage that caused it is not counted again
    assert report.resumed_user_ids == [ana.id]
    assert report.paused_user_ids == []
    assert User.get_by_id(ana.id).paid_work_paused_until is None
    assert len(runaway_notices(ana)) == 1


def test_new_usage_after_pause_is_new_episode(ana: User) -> None:
    spread(ana, calls_per_hour=5)
    usage(ana, NOW - timedelta(minutes=10), calls=400)
    run_safety_checks(NOW)

    later = NOW + timedelta(hours=RUNAWAY_PAUSE_HOURS, minutes=40)
    usage(ana, later - timedelta(minutes=20), calls=500)
    report = run_safety_checks(later)

    assert report.paused_user_ids == [ana.id]
    assert len(runaway_notices(ana)) == 2


def test_runaway_by_cost(ana: User) -> None:
    usage(ana, NOW - timedelta(minutes=5), calls=20, cost="0.80")

    [runaway] = find_runaways(NOW)

    assert runaway.user_id == ana.id
    assert runaway.recent.cost_usd == Decimal("0.80")


def test_below_floor_is_not_runaway(ana: User) -> None:
    usage(ana, NOW - timedelta(minutes=5), calls=150, cost="0.30")

    assert find_runaways(NOW) == []


def test_usual_heavy_rate_is_not_runaway(ana: User) -> None:
    # Given a user who makes 300 calls every hour all week
    spread(ana, calls_per_hour=300)
    usage(ana, NOW - timedelta(minutes=5), calls=310)

    assert find_runaways(NOW) == []


def test_paused_user_is_not_runaway(ana: User) -> None:
    User.update(paid_work_paused_until=NOW + timedelta(hours=1), pause_reason="operator: x").execute()
    usage(ana, NOW - timedelta(minutes=5), calls=1_000)

    assert find_runaways(NOW) == []


def test_passed_pause_cleared_and_active_kept(db) -> None:
    passed = User.create(email="a@example.com", paid_work_paused_until=NOW - timedelta(minutes=1),
                         pause_reason="runaway: 400 calls")
    active = User.create(email="b@example.com", paid_work_paused_until=NOW + timedelta(hours=2),
                         pause_reason=f"{PAUSE_OPERATOR}: paused by bob")

    resumed = clear_passed_pauses(NOW)

    assert resumed == [passed.id]
    assert User.get_by_id(passed.id).paid_work_paused_until is None
    assert User.get_by_id(passed.id).pause_reason == ""
    assert User.get_by_id(active.id).paid_work_paused_until is not None


def test_ceiling_pause_cleared_in_new_month(db) -> None:
    # Given two users paused at the ceiling until far ahead; one spent over
    # the free ceiling ($2) last month only, the other this month too
    far = NOW + timedelta(days=40)
    last_month = month_start(NOW) - timedelta(days=2)
    fresh = User.create(email="a@example.com", paid_work_paused_until=far,
                        pause_reason=f"{PAUSE_CEILING}: $2.10 of $2.00")
    still = User.create(email="b@example.com", paid_work_paused_until=far,
                        pause_reason=f"{PAUSE_CEILING}: $2.10 of $2.00")
    usage(fresh, last_month, cost="2.10")
    usage(still, last_month, cost="2.10")
    usage(still, NOW - timedelta(minutes=1), cost="2.10")

    # When the limiter lifts pauses
    resumed = clear_passed_pauses(NOW)

    # Then only the user under this month's ceiling is resumed
    assert resumed == [fresh.id]
    assert User.get_by_id(still.id).paid_work_paused_until == far


def test_warnings_for_every_user_with_usage(db) -> None:
    # Given two free users (ceiling $2) at 85% and 100%, and one at 10%
    users = [User.create(email=f"{name}@example.com") for name in ("a", "b", "c")]
    for user, cost in zip(users, ("1.70", "2.00", "0.20")):
        usage(user, utcnow() - timedelta(seconds=5), cost=cost)

    # When the limiter runs twice
    run_safety_checks()
    run_safety_checks()

    # Then the notices match the shares, once each
    month = month_start().strftime("%Y-%m")
    items = OutboxItem.select().where(OutboxItem.idempotency_key.startswith("cost-ceiling:"))
    keys = sorted(item.idempotency_key for item in items)
    assert keys == sorted([
        f"cost-ceiling:{users[0].id}:{month}:80",
        f"cost-ceiling:{users[1].id}:{month}:80",
        f"cost-ceiling:{users[1].id}:{month}:100",
    ])


def test_actor_delivers_notices(stub_broker: dramatiq.Broker) -> None:
    from actors.safety import safety_limiter

    user = User.create(email="a@example.com")
    usage(user, utcnow() - timedelta(seconds=5), cost="1.90")

    safety_limiter.send()
    run_embedded(stub_broker)

    run = JobRun.get(JobRun.actor == "safety_limiter")
    notice = OutboxItem.get(OutboxItem.idempotency_key.startswith("cost-ceiling:"))
    assert run.status == "succeeded"
    assert notice.status == "sent"
