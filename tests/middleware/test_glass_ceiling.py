from __future__ import annotations

import os
import threading
import time
from collections import Counter
from decimal import Decimal

import dramatiq
import pytest

from tests.middleware.workers import ROOT, dramatiq_workers, error_lines
from wallie.broker import reset_broker, run_embedded, setup_broker
from wallie.db.models import JobRun, OutboxItem, User
from wallie.errors import ConfigurationError
from wallie.limits import UnknownLimit, set_limit
from wallie.middleware.glass_ceiling import ActorLimits
from wallie.settings import Settings, load_settings
from wallie.usage import forget_cached_totals, record_usage


@pytest.fixture
def limited_broker(settings: Settings, db) -> dramatiq.Broker:
    """The in-process broker with tight provider limits."""
    reset_broker()
    tight = settings.replace(whatsapp_messages_per_second=5, graph_concurrent_per_mailbox=2)
    broker = setup_broker(tight)
    forget_cached_totals()
    yield broker
    broker.flush_all()
    reset_broker()


@pytest.fixture
def user(db) -> User:
    return User.create(email="sam@example.com", plan="free")


def test_rate_limit_delays_without_failing_or_spending_retries(limited_broker: dramatiq.Broker) -> None:
    @dramatiq.actor(broker=limited_broker, max_retries=0, limits=ActorLimits("whatsapp", per="deployment"))
    def broadcast(number: int) -> None:
        pass

    for number in range(20):
        broadcast.send(number)
    run_embedded(limited_broker)

    runs = list(JobRun.select())
    finished = [run for run in runs if run.status == "succeeded"]
    assert len(finished) == 20
    assert all(run.attempt == 0 for run in runs)
    assert not [run for run in runs if run.status == "failed"]
    per_second = Counter(int(run.started_at.timestamp()) for run in finished)
    assert max(per_second.values()) <= 5


def test_concurrency_limit_holds_per_mailbox(limited_broker: dramatiq.Broker) -> None:
    running = []
    peak = []
    lock = threading.Lock()

    @dramatiq.actor(broker=limited_broker, limits=ActorLimits("graph", per="mailbox"))
    def sync_mailbox(mailbox_id: int, part: int) -> None:
        with lock:
            running.append(part)
            peak.append(len(running))
        time.sleep(0.2)
        with lock:
            running.remove(part)

    for part in range(6):
        sync_mailbox.send(1, part)

    from wallie.broker import embedded_worker

    with embedded_worker(limited_broker, worker_threads=6):
        limited_broker.join("default", fail_fast=False)

    assert len(peak) == 6
    assert max(peak) <= 2


def test_cap_degrades_to_the_offline_path(limited_broker: dramatiq.Broker, user: User) -> None:
    engines = []
    set_limit("ai_analyses_per_day", "2", user=user, operator="test")

    @dramatiq.actor(broker=limited_broker, limits=ActorLimits(
        "openai", cap="ai_analyses_per_day", paid=True, degrade={"engine": "offline"}))
    def analyse(user_id: int, engine: str = "openai") -> None:
        engines.append(engine)

    for _ in range(3):
        analyse.send(user.id)
    run_embedded(limited_broker)

    assert sorted(engines) == ["offline", "openai", "openai"]
    degraded = JobRun.select().where(JobRun.reason.startswith("Degraded"))
    assert degraded.count() == 1
    assert "ai_analyses_per_day" in degraded.first().reason


def test_cap_without_degraded_path_defers(limited_broker: dramatiq.Broker, user: User) -> None:
    sends = []
    set_limit("emails_per_day", "1", user=user)

    @dramatiq.actor(broker=limited_broker, limits=ActorLimits("smtp", cap="emails_per_day"))
    def send_mail(user_id: int) -> None:
        sends.append(user_id)

    first = send_mail.send(user.id)
    second = send_mail.send(user.id)
    run_embedded(limited_broker)

    assert sends == [user.id]
    statuses = {run.message_id: run.status for run in JobRun.select()}
    assert sorted(statuses.values()) == ["deferred", "succeeded"]
    deferred = JobRun.get(JobRun.status == "deferred")
    assert deferred.message_id in (first.message_id, second.message_id)
    assert "emails_per_day" in deferred.reason
    assert "wallie-cli replay" in deferred.reason


def test_cost_notices_are_sent_once_at_80_and_100_percent(limited_broker: dramatiq.Broker, user: User) -> None:
    # Given a free plan with a $2.00 ceiling
    record_usage(user_id=user.id, provider="openai", cost_usd=Decimal("1.50"))
    assert OutboxItem.select().count() == 0

    # When spending passes 80%, twice
    record_usage(user_id=user.id, provider="openai", cost_usd=Decimal("0.20"))
    record_usage(user_id=user.id, provider="openai", cost_usd=Decimal("0.01"))
    assert [item.idempotency_key for item in OutboxItem.select()] == [f"cost-ceiling:{user.id}:{_month()}:80"]

    # When spending passes 100%
    record_usage(user_id=user.id, provider="openai", cost_usd=Decimal("0.40"))
    record_usage(user_id=user.id, provider="openai", cost_usd=Decimal("0.40"))
    keys = sorted(item.idempotency_key for item in OutboxItem.select())
    assert keys == [f"cost-ceiling:{user.id}:{_month()}:100", f"cost-ceiling:{user.id}:{_month()}:80"]


def test_paid_work_after_the_ceiling_is_degraded(limited_broker: dramatiq.Broker, user: User) -> None:
    engines = []

    @dramatiq.actor(broker=limited_broker, limits=ActorLimits("openai", paid=True, degrade={"engine": "offline"}))
    def analyse(user_id: int, engine: str = "openai") -> None:
        engines.append(engine)

    record_usage(user_id=user.id, provider="openai", cost_usd=Decimal("2.50"))
    analyse.send(user.id)
    run_embedded(limited_broker)

    assert engines == ["offline"]


def test_raised_ceiling_lets_paid_work_run_again(limited_broker: dramatiq.Broker, user: User) -> None:
    engines = []

    @dramatiq.actor(broker=limited_broker, limits=ActorLimits("openai", paid=True, degrade={"engine": "offline"}))
    def analyse(user_id: int, engine: str = "openai") -> None:
        engines.append(engine)

    record_usage(user_id=user.id, provider="openai", cost_usd=Decimal("2.50"))
    set_limit("cost_ceiling_usd", "10", user=user, operator="ops")
    analyse.send(user.id)
    run_embedded(limited_broker)

    assert engines == ["openai"]


def test_deployment_ceiling_stops_paid_work(settings: Settings, db, user: User) -> None:
    reset_broker()
    broker = setup_broker(settings.replace(deployment_cost_ceiling_usd=Decimal("1")))
    forget_cached_totals()
    other = User.create(email="kim@example.com")
    record_usage(user_id=other.id, provider="openai", cost_usd=Decimal("1.20"))
    engines = []

    @dramatiq.actor(broker=broker, limits=ActorLimits("openai", paid=True, degrade={"engine": "offline"}))
    def analyse(user_id: int, engine: str = "openai") -> None:
        engines.append(engine)

    analyse.send(user.id)
    run_embedded(broker)
    reset_broker()

    assert engines == ["offline"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("WALLIE_WHATSAPP_MESSAGES_PER_SECOND", "-5"), ("WALLIE_DEPLOYMENT_COST_CEILING_USD", "0")],
)
def test_bad_limit_settings_fail_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({name: value})

    assert caught.value.variable == name


def test_unknown_plan_and_limit_are_rejected(user: User) -> None:
    with pytest.raises(UnknownLimit, match="Valid plans: free, pro, team"):
        set_limit("emails_per_day", "5", plan="platinum")

    with pytest.raises(UnknownLimit, match="Unknown limit 'emails_per_week'"):
        set_limit("emails_per_week", "5", user=user)

    with pytest.raises(ValueError, match="got '-1'"):
        set_limit("emails_per_day", "-1", user=user)


def test_invalid_actor_limits_fail_when_declared(limited_broker: dramatiq.Broker) -> None:
    with pytest.raises(ValueError, match="per must be"):
        ActorLimits("openai", per="planet")

    with pytest.raises(ValueError, match="Unknown provider 'fax'"):
        ActorLimits("fax")

    with pytest.raises(ValueError, match="must be an ActorLimits"):
        @dramatiq.actor(broker=limited_broker, limits={"provider": "openai"})
        def send_fax() -> None:
            pass


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_rate_limit_across_four_worker_processes(redis_settings: Settings, db) -> None:
    # Given 100 messages for one key limited to 10 per second, on four workers
    env = {**os.environ, "REDIS_URL": redis_settings.redis_url or "", "DATABASE_URL": redis_settings.database_url,
           "WALLIE_HOME": str(redis_settings.home), "PYTHONPATH": str(ROOT),
           "WALLIE_WHATSAPP_MESSAGES_PER_SECOND": "10"}
    reset_broker()
    broker = setup_broker(redis_settings.replace(whatsapp_messages_per_second=10))

    @dramatiq.actor(broker=broker, actor_name="broadcast", max_retries=3,
                    limits=ActorLimits("whatsapp", per="deployment"))
    def broadcast(number: int) -> None:
        raise AssertionError("runs only in the worker processes")

    messages = [broadcast.send(number) for number in range(100)]
    try:
        with dramatiq_workers("tests.middleware.limited_actors", 4, env=env,
                              folder=redis_settings.home, threads=4) as logs:
            deadline = time.monotonic() + 120
            done = 0
            while time.monotonic() < deadline and done < 100:
                time.sleep(0.5)
                done = JobRun.select().where(JobRun.status == "succeeded").count()
    finally:
        reset_broker()

    # Then every message ran once, on its first attempt, at most 10 in any second
    runs = list(JobRun.select())
    succeeded = [run for run in runs if run.status == "succeeded"]
    others = Counter(run.status for run in runs if run.status != "succeeded")
    errors = error_lines(logs)[:20]
    assert sorted(run.message_id for run in succeeded) == sorted(m.message_id for m in messages), (others, errors)
    assert all(run.attempt == 0 for run in runs)
    assert not [run for run in runs if run.status in ("failed", "retrying")]
    # 100 messages at 10 a second fill 10 one-second windows, so the first and
    # the last start at least 8 whole windows apart.
    # A window's messages may all start late, in a later second, so the
    # seconds that saw a start can be fewer than ten.
    starts = sorted(run.started_at.timestamp() for run in succeeded)
    assert starts[-1] - starts[0] >= 8.0
    # The limiter reserves a slot in a one-second window and delays the message
    # to that window, so a message may start late (a busy worker) but never
    # early: by the end of each second, at most 10 per elapsed window started.
    # The first window may lie one second before the first start seen, when
    # all of its messages started late.
    per_second = Counter(int(start) for start in starts)
    first = min(per_second)
    started = 0
    for second in range(first, max(per_second) + 1):
        started += per_second[second]
        assert started <= 10 * (second - first + 2), second


def _month() -> str:
    from wallie.usage import month_start

    return month_start().strftime("%Y-%m")
