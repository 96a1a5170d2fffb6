"""The knowledge import actors: uploads, batch imports on Redis, follow-ups."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import dramatiq
import peewee
import pytest
from dramatiq.middleware import Middleware

import actors
from tests.chats import generated_chat
from wallie.broker import embedded_worker, run_embedded
from wallie.db.models import Import, KnowledgeDocument, Message, Reminder
from wallie.knowledge.uploads import UploadPathError, import_upload
from wallie.settings import Settings
from wallie.storage import get_or_create_user
from wallie.whatsapp import importer

#: Maximum wait for a worker pool to finish a batch import, in seconds.
WAIT_SECONDS = 120


@pytest.fixture
def configure(settings: Settings, monkeypatch: pytest.MonkeyPatch
              ) -> Callable[..., Settings]:
    """Return a function that sets what the actors' get_settings() returns."""

    def apply(**changes: Any) -> Settings:
        configured = settings.replace(**changes)
        for module in ("knowledge", "analysis", "outbox"):
            monkeypatch.setattr(f"actors.{module}.get_settings", lambda: configured)
        return configured

    apply()
    return apply


def upload_sample(settings: Settings) -> str:
    target = settings.home / "uploads" / "WhatsApp Chat with Ana Souza.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    sample = resources.files("wallie") / "samples" / "whatsapp_sample.txt"
    target.write_bytes(sample.read_bytes())
    return "uploads/WhatsApp Chat with Ana Souza.txt"


def test_import_runs_analysis_after(
    stub_broker: dramatiq.Broker, configure: Callable[..., Settings], settings: Settings
) -> None:
    user, _ = get_or_create_user("sam@example.com")
    key = upload_sample(settings)

    actors.knowledge_import.send(user_id=user.id, path=key, me="Sam Carter")
    run_embedded(stub_broker)

    assert Import.get().status == "done"
    assert Message.select().count() == 42
    assert Reminder.select().count() >= 1


def test_import_of_a_text_document(
    stub_broker: dramatiq.Broker, configure: Callable[..., Settings], settings: Settings
) -> None:
    user, _ = get_or_create_user("sam@example.com")
    note = settings.home / "uploads" / "pricing.txt"
    note.parent.mkdir(parents=True)
    note.write_text("Oak Line: $240 per unit, $210 from 50 units.\n", encoding="utf-8")

    actors.knowledge_import.send(user_id=user.id, path="uploads/pricing.txt")
    run_embedded(stub_broker)

    assert KnowledgeDocument.get().text.startswith("Oak Line")


def test_path_outside_home_is_rejected(
    settings: Settings, db: peewee.Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    user, _ = get_or_create_user("sam@example.com")
    outside = tmp_path_factory.mktemp("elsewhere") / "chat.txt"
    outside.write_text("x", encoding="utf-8")

    with pytest.raises(UploadPathError, match="outside WALLIE_HOME"):
        import_upload(user.id, str(outside), settings)


def test_parent_reference_is_rejected(settings: Settings, db: peewee.Database) -> None:
    user, _ = get_or_create_user("sam@example.com")

    with pytest.raises(UploadPathError, match="outside WALLIE_HOME"):
        import_upload(user.id, "../../etc/passwd", settings)


def _wait_for_import(import_id: int) -> Import:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        row = Import.get_by_id(import_id)
        if row.status in ("done", "partial", "failed"):
            return row
        time.sleep(0.2)
    return Import.get_by_id(import_id)


def test_batch_import_survives_a_crash_on_redis(
    redis_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a 3,000-message export above the batch threshold, in chunks of 600
    configured = configure(batch_import_bytes=1_000)
    monkeypatch.setattr(importer, "CHUNK_SIZE", 600)
    user, _ = get_or_create_user("sam@example.com")
    generated_chat(configured.home / "uploads" / "big.txt", 3_000)

    # And a worker that dies once after storing the first batch of chunk 3
    store = importer.store_messages
    crashed = threading.Event()

    def crash_once(plan: Any, batch: list[Any], clock: Any) -> int:
        stored = store(plan, batch, clock)
        if batch[0].text.startswith("message 1200 ") and not crashed.is_set():
            crashed.set()
            raise RuntimeError("worker killed half-way")
        return stored

    monkeypatch.setattr(importer, "store_chunk_batch", crash_once)

    # When four worker threads run the import
    with embedded_worker(redis_broker, worker_threads=4):
        actors.knowledge_import.send(user_id=user.id, path="uploads/big.txt",
                                     me="Sam Carter")
        deadline = time.monotonic() + WAIT_SECONDS
        while Import.select().count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        row = _wait_for_import(Import.get().id)

    # Then the retried chunk completes the import with every message once
    assert crashed.is_set()
    assert row.status == "done"
    assert row.stats["chunks_total"] == 5
    assert sorted(row.stats["chunks_done"]) == [1, 2, 3, 4, 5]
    assert row.stats["messages"] == 3_000
    assert row.stats["duplicates_skipped"] == 0
    assert Message.select().count() == 3_000


def test_import_with_new_date_order_replaces(
    stub_broker: dramatiq.Broker, configure: Callable[..., Settings], settings: Settings
) -> None:
    # Given an upload whose dates read in either order, imported day first
    user, _ = get_or_create_user("sam@example.com", locale="en-GB")
    generated_chat(settings.home / "uploads" / "chat.txt", 20)
    key = "uploads/chat.txt"
    actors.knowledge_import.send(user_id=user.id, path=key, me="Sam Carter")
    run_embedded(stub_broker)
    first = Import.get()

    # When the worker imports it again month first
    actors.knowledge_import.send(user_id=user.id, path=key, me="Sam Carter",
                                 date_order="mdy")
    run_embedded(stub_broker)

    # Then the messages are stored once, with the month-first dates
    second = Import.select().order_by(Import.id.desc()).get()
    dates = {message.sent_at.date() for message in Message.select()}
    assert Import.get_by_id(first.id).status == "replaced"
    assert second.status == "done"
    assert second.stats["replaced_import"] == first.id
    assert Message.select().count() == 20
    assert dates == {datetime.date(2026, 5, 1)}


def _import_during_batch(
    stub_broker: dramatiq.Broker, settings: Settings, finish_after: int | None
) -> tuple[int, list[str]]:
    """Send a month-first import of an upload that a day-first batch import is storing.

    The batch import stores its first chunk, and the rest once the new
    reading has failed ``finish_after`` times (never when None).

    Returns:
      The batch import's id, and the names of the errors of each failure.
    """
    user, _ = get_or_create_user("sam@example.com", locale="en-GB")
    path = generated_chat(settings.home / "uploads" / "chat.txt", 40)
    import_id, chunks = importer.split_into_chunks(user, path, settings, me="Sam Carter",
                                                   chunk_size=10)
    importer.store_chunk(settings, import_id, 1)
    failures: list[str] = []

    class FinishLate(Middleware):
        def after_process_message(self, broker: dramatiq.Broker, message: Any, *,
                                  result: Any = None, exception: BaseException | None = None
                                  ) -> None:
            if exception is None:
                return

            failures.append(type(exception).__name__)
            if len(failures) == finish_after:
                for number in range(2, chunks + 1):
                    importer.store_chunk(settings, import_id, number)

    stub_broker.add_middleware(FinishLate())
    actors.knowledge_import.send(user_id=user.id, path="uploads/chat.txt", me="Sam Carter",
                                 date_order="mdy")
    run_embedded(stub_broker)
    return import_id, failures


@pytest.mark.redis
def test_import_waits_beyond_its_retries(
    stub_broker: dramatiq.Broker, configure: Callable[..., Settings], redis_url: str
) -> None:
    # Given the settings of a worker on Redis, with the jobs run here
    settings = configure(redis_url=redis_url)
    attempts = actors.knowledge_import.options["max_retries"] + 1

    # When a new reading of a file fails while a batch import of it is stored,
    # as many times as the job may fail for other errors
    import_id, failures = _import_during_batch(stub_broker, settings, attempts)

    # Then the job waited without spending its retries, and replaced the
    # finished import once it could
    newest = Import.select().order_by(Import.id.desc()).get()
    assert failures == ["ImportInProgressError"] * attempts
    assert Import.get_by_id(import_id).status == "replaced"
    assert newest.status == "done"
    assert newest.stats["replaced_import"] == import_id
    assert Message.select().count() == 40


def test_embedded_import_does_not_wait(
    stub_broker: dramatiq.Broker, configure: Callable[..., Settings], settings: Settings
) -> None:
    # When a new reading of a file runs in-process while a batch import of
    # it is stored
    import_id, failures = _import_during_batch(stub_broker, settings, None)

    # Then the job fails after its ordinary retries, and the batch import stays
    attempts = actors.knowledge_import.options["max_retries"] + 1
    assert failures == ["ImportInProgressError"] * attempts
    assert Import.get_by_id(import_id).status == "running"
    assert Import.select().count() == 1
