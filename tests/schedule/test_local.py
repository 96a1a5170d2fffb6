"""Per-user local-time jobs across DST changes, half-hour offsets and moves."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import peewee
import pytest
import time_machine

from tests.reports import factories
from wallie.db.models import LocalRun, OutboxItem, User
from wallie.reports.daily import queue_daily_summary
from wallie.schedule.local import DAILY_SUMMARY, WEEKLY_REPORT, claim_due_runs, due_period, prune_local_runs

ZONES = ("America/Los_Angeles", "Europe/Amsterdam", "Asia/Kolkata", "Australia/Lord_Howe")

#: The DST changes of 2026 in the zones above (Kolkata has none).
DST_CHANGES = {
    "los-angeles-spring": date(2026, 3, 8),
    "los-angeles-autumn": date(2026, 11, 1),
    "amsterdam-spring": date(2026, 3, 29),
    "amsterdam-autumn": date(2026, 10, 25),
    "lord-howe-april": date(2026, 4, 5),
    "lord-howe-october": date(2026, 10, 4),
}

TICK = timedelta(minutes=15)


def _users() -> list[User]:
    users = []
    for index, zone in enumerate(ZONES):
        user = factories.user(f"user{index}@example.com", zone)
        # An overdue reminder gives every day's summary something to say.
        factories.reminder(user, "Send the price list", datetime(2026, 1, 1, tzinfo=UTC))
        users.append(user)

    return users


def _simulate(start: datetime, end: datetime) -> None:
    """Run the 15-minute tick from ``start`` to ``end`` with the clock moved to each tick."""
    moment = start
    while moment < end:
        with time_machine.travel(moment, tick=False):
            for claim in claim_due_runs(jobs=(DAILY_SUMMARY,)):
                queue_daily_summary(claim.user_id, date.fromisoformat(claim.period))

        moment += TICK


def _expected_dates(zone: str, start: datetime, end: datetime) -> set[str]:
    dates = set()
    day = (start - timedelta(days=1)).date()
    while day <= (end + timedelta(days=1)).date():
        eight = datetime.combine(day, time(8), tzinfo=ZoneInfo(zone)).astimezone(UTC)
        if start <= eight < end:
            dates.add(day.isoformat())

        day += timedelta(days=1)

    return dates


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("change", list(DST_CHANGES), ids=list(DST_CHANGES))
def test_one_summary_per_local_day_at_eight(db: peewee.Database, change: str) -> None:
    # Given users in four zones and four days around a DST change
    users = _users()
    start = datetime.combine(DST_CHANGES[change] - timedelta(days=2), time(0), tzinfo=UTC)
    end = start + timedelta(days=4)

    # (the days whose 08:00 came before the start were handled earlier)
    claim_due_runs(start - TICK, jobs=(DAILY_SUMMARY,))

    # When the tick runs every 15 minutes
    _simulate(start, end)

    # Then each user has one summary per local day, written at 08:00 local
    for user in users:
        items = OutboxItem.select().where(OutboxItem.idempotency_key.startswith(f"daily-summary:{user.id}:"))
        keys = [item.idempotency_key.rsplit(":", 1)[1] for item in items]
        assert sorted(keys) == sorted(_expected_dates(user.time_zone, start, end)), user.time_zone
        assert len(keys) == len(set(keys)), user.time_zone
        for item in items:
            local = item.created_at.astimezone(ZoneInfo(user.time_zone))
            assert (local.hour, local.minute) == (8, 0), (user.time_zone, local)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_late_tick_sends_same_day_once(db: peewee.Database) -> None:
    # Given the scheduler is down in Kolkata from 07:00 to 13:30 local
    [user] = [u for u in _users() if u.time_zone == "Asia/Kolkata"]
    day = date(2026, 3, 10)
    zone = ZoneInfo("Asia/Kolkata")
    _simulate(
        datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC),
        datetime.combine(day, time(7), tzinfo=zone).astimezone(UTC),
    )

    # When ticks resume at 13:30 until midnight
    _simulate(
        datetime.combine(day, time(13, 30), tzinfo=zone).astimezone(UTC),
        datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC),
    )

    # Then the day's summary went out once, at 13:30
    [item] = OutboxItem.select().where(OutboxItem.user == user.id)
    assert item.idempotency_key == f"daily-summary:{user.id}:2026-03-10"
    assert item.created_at.astimezone(zone).time() == time(13, 30)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_time_zone_change_keeps_one_summary_per_date(db: peewee.Database) -> None:
    # Given an Amsterdam user who got the summary of 10 March at 08:00 CET
    user = factories.user("mover@example.com", "Europe/Amsterdam")
    factories.reminder(user, "Call back", datetime(2026, 1, 1, tzinfo=UTC))
    _simulate(datetime(2026, 3, 10, 6, 0, tzinfo=UTC), datetime(2026, 3, 10, 8, 0, tzinfo=UTC))

    # When they move to Los Angeles the same day, where it is still 10 March
    User.update(time_zone="America/Los_Angeles").where(User.id == user.id).execute()
    _simulate(datetime(2026, 3, 10, 8, 0, tzinfo=UTC), datetime(2026, 3, 11, 18, 0, tzinfo=UTC))

    # Then 10 March is not sent again, and 11 March comes at 08:00 Los Angeles time
    items = {item.idempotency_key: item for item in OutboxItem.select().where(OutboxItem.user == user.id)}
    assert sorted(items) == [f"daily-summary:{user.id}:2026-03-10", f"daily-summary:{user.id}:2026-03-11"]
    second = items[f"daily-summary:{user.id}:2026-03-11"].created_at
    assert second.astimezone(ZoneInfo("America/Los_Angeles")).time() == time(8, 0)


def test_half_hour_zone_is_due_exactly_at_eight() -> None:
    zone = ZoneInfo("Asia/Kolkata")
    before = datetime(2026, 3, 10, 2, 15, tzinfo=UTC).astimezone(zone)
    at = datetime(2026, 3, 10, 2, 30, tzinfo=UTC).astimezone(zone)

    assert due_period(DAILY_SUMMARY, before) is None
    assert due_period(DAILY_SUMMARY, at) == "2026-03-10"


def test_weekly_job_is_due_from_monday_nine_all_week() -> None:
    zone = ZoneInfo("Europe/Amsterdam")

    assert due_period(WEEKLY_REPORT, datetime(2026, 3, 9, 8, 45, tzinfo=zone)) is None
    assert due_period(WEEKLY_REPORT, datetime(2026, 3, 9, 9, 0, tzinfo=zone)) == "2026-W11"
    assert due_period(WEEKLY_REPORT, datetime(2026, 3, 15, 23, 45, tzinfo=zone)) == "2026-W11"


def test_claims_are_made_once(db: peewee.Database) -> None:
    factories.user("a@example.com", "Asia/Kolkata")
    now = datetime(2026, 3, 10, 2, 30, tzinfo=UTC)

    first = claim_due_runs(now, jobs=(DAILY_SUMMARY,))
    second = claim_due_runs(now + TICK, jobs=(DAILY_SUMMARY,))

    assert [(claim.job, claim.period) for claim in first] == [("daily_summary", "2026-03-10")]
    assert second == []
    assert LocalRun.select().count() == 1


def test_invalid_time_zone_runs_in_utc(db: peewee.Database) -> None:
    factories.user("odd@example.com", "Mars/Olympus_Mons")

    claims = claim_due_runs(datetime(2026, 3, 10, 8, 0, tzinfo=UTC), jobs=(DAILY_SUMMARY,))

    assert [claim.period for claim in claims] == ["2026-03-10"]


def test_old_claims_are_pruned(db: peewee.Database) -> None:
    factories.user("a@example.com", "UTC")
    claim_due_runs(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), jobs=(DAILY_SUMMARY,))
    claim_due_runs(datetime(2026, 3, 20, 9, 0, tzinfo=UTC), jobs=(DAILY_SUMMARY,))

    deleted = prune_local_runs(datetime(2026, 3, 20, 9, 0, tzinfo=UTC))

    assert deleted == 1
    assert [run.period for run in LocalRun.select()] == ["2026-03-20"]
