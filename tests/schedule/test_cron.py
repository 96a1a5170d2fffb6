from __future__ import annotations

from datetime import UTC, datetime

from periodiq import cron

from wallie.schedule.cron import matches, next_tick, previous_tick


def test_next_tick_of_hourly_cron() -> None:
    after = datetime(2026, 3, 8, 9, 59, 30, tzinfo=UTC)

    assert next_tick(cron("0 * * * *"), after) == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)


def test_next_tick_is_strictly_after() -> None:
    at = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)

    assert next_tick(cron("0 * * * *"), at) == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)


def test_previous_tick_includes_the_minute() -> None:
    at = datetime(2026, 3, 8, 10, 0, 45, tzinfo=UTC)

    assert previous_tick(cron("0 * * * *"), at) == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)


def test_sunday_matches_as_zero_and_seven() -> None:
    sunday = datetime(2026, 3, 8, 0, 0, tzinfo=UTC)

    assert matches(cron("0 0 * * 0"), sunday)
    assert matches(cron("0 0 * * 7"), sunday)
    assert matches(cron("0 0 * * sun"), sunday)


def test_weekly_cron_finds_next_monday() -> None:
    friday = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)

    assert next_tick(cron("0 9 * * mon"), friday) == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def test_cron_is_read_in_utc_whatever_the_offset() -> None:
    amsterdam_evening = datetime.fromisoformat("2026-03-29T23:30:00+02:00")

    assert previous_tick(cron("0 * * * *"), amsterdam_evening) == datetime(2026, 3, 29, 21, 0, tzinfo=UTC)


def test_impossible_date_has_no_tick() -> None:
    assert next_tick(cron("0 0 30 2 *"), datetime(2026, 1, 1, tzinfo=UTC)) is None
