"""Tests for the mail actors: fan-out, per-mailbox lock, reconnect notice, retries."""

from __future__ import annotations

import functools
import json
import threading
import time
from datetime import timedelta
from typing import Any

import dramatiq
import httplib2
import peewee
import pytest
import redis
from cryptography.fernet import Fernet

import actors
from tests.mail.fakes import NOW, FakeGmail, serve
from wallie.broker import run_embedded
from wallie.db.models import JobRun, Mailbox, Notification, OutboxItem
from wallie.locks import KEY_PREFIX, exclusive
from wallie.mail import jobs
from wallie.mail.errors import ProviderRateLimited
from wallie.mail.mailboxes import connect_mailbox
from wallie.mail.sync import SyncResult, sync_gmail
from wallie.mail.tokens import OAuthToken, TokenCipher
from wallie.settings import Settings
from wallie.storage import get_or_create_user


@pytest.fixture
def key_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with a token key, returned by every actor's get_settings()."""
    configured = settings.replace(token_keys=Fernet.generate_key().decode())
    monkeypatch.setattr("actors.mail.get_settings", lambda: configured)
    monkeypatch.setattr("actors.outbox.get_settings", lambda: configured)
    return configured


def add_mailbox(
    settings: Settings, email: str, provider: str = "gmail", **token: Any
) -> Mailbox:
    user, _ = get_or_create_user(email)
    values: dict[str, Any] = {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "expires_at": NOW + timedelta(days=3650),
        "client_id": "client-1",
        "client_secret": "secret-1",
        **token,
    }
    cipher = TokenCipher(settings.token_keys)
    mailbox, _ = connect_mailbox(user, provider, email, OAuthToken(**values), cipher)
    return mailbox


def result_for(mailbox_id: int, conversation_ids: tuple[int, ...] = ()) -> SyncResult:
    return SyncResult(
        mailbox_id=mailbox_id,
        provider="gmail",
        full_sync=False,
        fetched=len(conversation_ids),
        stored=len(conversation_ids),
        deleted=0,
        updated=0,
        skipped=0,
        conversation_ids=conversation_ids,
        requests=1,
    )


def queued(broker: dramatiq.Broker, queue_name: str) -> list[dramatiq.Message[Any]]:
    queue = broker.queues.get(queue_name)
    if queue is None:
        return []
    return [dramatiq.Message.decode(raw) for raw in list(queue.queue)]


def test_mail_actors_declared_every_15_minutes(stub_broker: dramatiq.Broker) -> None:
    for name in ("gmail_sync", "outlook_sync"):
        actor = stub_broker.get_actor(name)
        assert str(actor.options["periodic"]) == "*/15 * * * *"
        assert actor.queue_name == "mail"
    for name in ("gmail_sync_single_user", "outlook_sync_mailbox"):
        assert (
            stub_broker.get_actor(name).options["time_limit"] == jobs.SYNC_TIME_LIMIT_MS
        )


def test_fan_out_one_message_per_active_mailbox(
    stub_broker: dramatiq.Broker, key_settings: Settings
) -> None:
    first = add_mailbox(key_settings, "ana@example.com")
    second = add_mailbox(key_settings, "ben@example.com")
    revoked = add_mailbox(key_settings, "cy@example.com")
    Mailbox.update(state="needs_reconnect").where(Mailbox.id == revoked.id).execute()
    outlook = add_mailbox(key_settings, "dee@example.com", "outlook")

    actors.gmail_sync.fn()
    actors.outlook_sync.fn()

    messages = queued(stub_broker, "mail")
    gmail_ids = [
        m.args[0] for m in messages if m.actor_name == "gmail_sync_single_user"
    ]
    outlook_ids = [
        m.args[0] for m in messages if m.actor_name == "outlook_sync_mailbox"
    ]
    assert gmail_ids == [first.id, second.id]
    assert outlook_ids == [outlook.id]


def test_fan_out_staggers_with_redis(
    stub_broker: dramatiq.Broker,
    key_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [add_mailbox(key_settings, f"user{n}@example.com").id for n in range(3)]
    with_redis = key_settings.replace(redis_url="redis://127.0.0.1:9/0")
    monkeypatch.setattr("actors.mail.get_settings", lambda: with_redis)

    actors.gmail_sync.fn()

    now_ready = queued(stub_broker, "mail")
    delayed = queued(stub_broker, "mail.DQ")
    assert [m.args[0] for m in now_ready] == ids[:1]
    assert [m.args[0] for m in delayed] == ids[1:]
    gap_s = (delayed[1].options["eta"] - delayed[0].options["eta"]) / 1000
    assert gap_s == pytest.approx(jobs.FAN_OUT_SPREAD_MS / 3 / 1000, abs=2)


def test_stagger_delays_spread_evenly() -> None:
    assert jobs.stagger_delays(0, 300_000) == []
    assert jobs.stagger_delays(1, 300_000) == [0]
    assert jobs.stagger_delays(4, 300_000) == [0, 75_000, 150_000, 225_000]


def test_single_user_sync_stores_and_records(
    stub_broker: dramatiq.Broker,
    key_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeGmail(owner="ana@example.com")
    fake.add("m1", thread_id="t1")
    fake.add("m2", thread_id="t2")
    mailbox = add_mailbox(key_settings, "ana@example.com")
    with serve(fake.route) as url:
        syncer = functools.partial(
            sync_gmail,
            http_factory=lambda credentials: httplib2.Http(timeout=10),
            api_endpoint=url,
            clock=lambda: NOW,
        )
        monkeypatch.setitem(jobs.SYNCERS, "gmail", syncer)
        actors.gmail_sync.send()
        run_embedded(stub_broker)

    stored = Mailbox.get_by_id(mailbox.id)
    assert stored.last_sync_at is not None
    assert stored.last_error == ""
    mail_runs = JobRun.select().where(JobRun.actor.startswith("gmail_"))
    runs = {run.actor: run.status for run in mail_runs}
    assert runs == {"gmail_sync": "succeeded", "gmail_sync_single_user": "succeeded"}


def test_new_conversations_sent_to_analysis(
    stub_broker: dramatiq.Broker,
    key_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox = add_mailbox(key_settings, "ana@example.com")
    monkeypatch.setitem(
        jobs.SYNCERS, "gmail", lambda mailbox_id, **_: result_for(mailbox_id, (4, 9))
    )

    # Given a broker without the analysis actor of the actors package (the
    # test's own stand-in replaces it until the test ends).
    monkeypatch.delitem(stub_broker.actors, "conversation_analysis")
    before = jobs.run_sync_job("gmail", mailbox.id, key_settings, stub_broker)
    analysed: list[int] = []

    @dramatiq.actor(broker=stub_broker, queue_name="analysis")
    def conversation_analysis(user_id: int, conversation_id: int) -> None:
        assert user_id == mailbox.user_id
        analysed.append(conversation_id)

    after = jobs.run_sync_job("gmail", mailbox.id, key_settings, stub_broker)
    run_embedded(stub_broker)

    assert before.analysis_sent == 0
    assert after.analysis_sent == 2
    assert sorted(analysed) == [4, 9]


def test_revoked_refresh_notifies_once(
    stub_broker: dramatiq.Broker, key_settings: Settings
) -> None:
    body = json.dumps(
        {"error": "invalid_grant", "error_description": "Token has been revoked."}
    )
    with serve(lambda request: (400, {}, body.encode())) as token_url:
        mailbox = add_mailbox(
            key_settings,
            "ana@example.com",
            token_uri=f"{token_url}token",
            expires_at=NOW - timedelta(days=1),
        )
        for _ in range(3):
            actors.gmail_sync_single_user.send(mailbox.id)
            run_embedded(stub_broker)

    stored = Mailbox.get_by_id(mailbox.id)
    assert stored.state == "needs_reconnect"
    assert "invalid_grant" in stored.last_error
    assert stored.reconnect_notified_at is not None
    items = list(OutboxItem.select())
    assert len(items) == 1
    assert items[0].idempotency_key.startswith(f"mailbox-reconnect:{mailbox.id}:")
    assert items[0].status == "sent"
    assert Notification.select().count() == 1
    runs = [
        run.status
        for run in JobRun.select()
        .where(JobRun.actor == "gmail_sync_single_user")
        .order_by(JobRun.id)
    ]
    assert runs == ["succeeded", "skipped", "skipped"]


def test_rate_limit_retries_after_hint(
    db: peewee.Database, key_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox = add_mailbox(key_settings, "ana@example.com")

    def limited(mailbox_id: int, **_: Any) -> SyncResult:
        raise ProviderRateLimited(
            "Slow down.",
            provider="gmail",
            account=str(mailbox_id),
            retry_after_ms=23_688,
            hinted=True,
        )

    monkeypatch.setitem(jobs.SYNCERS, "gmail", limited)

    with pytest.raises(dramatiq.Retry) as raised:
        jobs.run_sync_job("gmail", mailbox.id, key_settings, dramatiq.get_broker())

    assert raised.value.delay == 23_688
    assert "ProviderRateLimited" in Mailbox.get_by_id(mailbox.id).last_error


def test_held_lock_skips_in_run_history(
    stub_broker: dramatiq.Broker,
    key_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox = add_mailbox(key_settings, "ana@example.com")
    calls: list[int] = []
    monkeypatch.setitem(
        jobs.SYNCERS,
        "gmail",
        lambda mailbox_id, **_: calls.append(mailbox_id) or result_for(mailbox_id),
    )

    with exclusive(key_settings, jobs.mailbox_lock_key(mailbox), 60_000) as acquired:
        assert acquired is True
        actors.gmail_sync_single_user.send(mailbox.id)
        run_embedded(stub_broker)

    run = JobRun.get(JobRun.actor == "gmail_sync_single_user")
    assert run.status == "skipped"
    assert "syncing mailbox" in run.reason
    assert calls == []


def concurrent_syncs(
    settings: Settings, mailbox_id: int, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Run two jobs of one mailbox at once; return their statuses."""
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def slow(mailbox_id: int, **_: Any) -> SyncResult:
        calls.append(mailbox_id)
        started.set()
        release.wait(timeout=10)
        return result_for(mailbox_id)

    monkeypatch.setitem(jobs.SYNCERS, "gmail", slow)
    statuses: list[str] = []
    broker = dramatiq.get_broker()
    first = threading.Thread(
        target=lambda: statuses.append(
            jobs.run_sync_job("gmail", mailbox_id, settings, broker).status
        )
    )
    first.start()
    assert started.wait(timeout=10)
    statuses.append(jobs.run_sync_job("gmail", mailbox_id, settings, broker).status)
    release.set()
    first.join(timeout=10)
    assert calls == [mailbox_id]
    return statuses


def test_lock_prevents_concurrent_syncs_in_process(
    db: peewee.Database, key_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox = add_mailbox(key_settings, "ana@example.com")

    assert concurrent_syncs(key_settings, mailbox.id, monkeypatch) == [
        "skipped",
        "synced",
    ]


@pytest.mark.redis
def test_lock_prevents_concurrent_syncs_on_redis(
    db: peewee.Database,
    key_settings: Settings,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_redis = key_settings.replace(redis_url=redis_url)
    mailbox = add_mailbox(key_settings, "ana@example.com")

    statuses = concurrent_syncs(with_redis, mailbox.id, monkeypatch)

    assert statuses == ["skipped", "synced"]
    client = redis.Redis.from_url(redis_url)
    assert client.exists(KEY_PREFIX + jobs.mailbox_lock_key(mailbox)) == 0


@pytest.mark.redis
def test_redis_lock_expires_and_release_is_safe(
    key_settings: Settings, redis_url: str
) -> None:
    with_redis = key_settings.replace(redis_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    key = f"{KEY_PREFIX}mailbox-sync:77"
    first = exclusive(with_redis, "mailbox-sync:77", 200)
    second = exclusive(with_redis, "mailbox-sync:77", 60_000)

    assert first.__enter__() is True
    assert 0 < client.pttl(key) <= 200
    time.sleep(0.3)
    assert second.__enter__() is True
    first.__exit__(None, None, None)

    assert client.exists(key) == 1
    second.__exit__(None, None, None)
    assert client.exists(key) == 0
