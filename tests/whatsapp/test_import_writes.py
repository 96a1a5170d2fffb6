"""Batch writes of WhatsApp imports: transactions, retries and writer threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import peewee
import pytest

from wallie.db.models import Attachment, Import, Message
from wallie.settings import Settings
from wallie.storage import get_or_create_user
from wallie.whatsapp import importer
from wallie.whatsapp.importer import (
    LocalClock,
    import_whatsapp,
    message_rows,
    prepare,
    write_rows,
)

from .test_importer import sample_lines, write_chat


def test_failed_batch_rolls_back_whole(
    settings: Settings,
    db: peewee.Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the rows of a chat with attachments
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path, sample_lines())
    prepared = prepare(user, path, settings, me="Sam Carter")
    plan = prepared.plan
    [batch] = list(prepared.packed_batches())
    prepared.close()
    rows = message_rows(plan, batch, LocalClock(ZoneInfo(plan.time_zone)))
    media = sum(len(files) for files in rows.media.values())
    assert media > 0

    # When the worker dies while building the attachment rows
    real_row = importer._attachment_row

    def die(*arguments: Any) -> dict[str, Any]:
        raise RuntimeError("worker killed")

    monkeypatch.setattr(importer, "_attachment_row", die)
    with pytest.raises(RuntimeError, match="worker killed"):
        write_rows(plan, rows)

    # Then the batch's messages were rolled back with it
    assert Message.select().count() == 0

    # And the retried batch stores every message and attachment, once
    monkeypatch.setattr(importer, "_attachment_row", real_row)
    assert write_rows(plan, rows) == len(batch)
    assert write_rows(plan, rows) == 0
    assert Message.select().count() == len(batch)
    assert Attachment.select().count() == media


def test_retried_batch_adds_no_message(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a batch stored, then its attachments lost as after an older crash
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path, sample_lines())
    prepared = prepare(user, path, settings, me="Sam Carter")
    plan = prepared.plan
    [batch] = list(prepared.packed_batches())
    prepared.close()
    rows = message_rows(plan, batch, LocalClock(ZoneInfo(plan.time_zone)))
    write_rows(plan, rows)
    media = Attachment.select().count()
    Attachment.delete().execute()

    # When the batch runs again
    again = write_rows(plan, rows)

    # Then no message is added and the missing attachments come back once
    assert again == 0
    assert Message.select().count() == len(batch)
    assert Attachment.select().count() == media


def test_many_batches_report_progress(
    settings: Settings,
    db: peewee.Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given batches of 7 messages, so the writer threads overlap
    monkeypatch.setattr(importer, "BATCH_SIZE", 7)
    user, _ = get_or_create_user("sam@example.com")
    reports: list[tuple[int, int]] = []

    def report(done: int, total: int) -> None:
        reports.append((done, total))

    # When the sample chat is imported
    path = write_chat(tmp_path, sample_lines())
    result = import_whatsapp(user, path, settings, me="Sam Carter", progress=report)

    # Then progress rises batch by batch to the total, and every message is stored
    total = result.stats["parsed_messages"]
    assert [done for done, _ in reports] == sorted({done for done, _ in reports})
    assert reports[0] == (7, total)
    assert reports[-1] == (total, total)
    assert len(reports) == -(-total // 7)
    assert Message.select().count() == total
    assert result.stats["duplicates_skipped"] == 0
    assert Attachment.select().count() == result.stats["media"]


def test_writer_failure_fails_import(
    settings: Settings,
    db: peewee.Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given batches of 7 messages and a writer that dies on the third batch
    monkeypatch.setattr(importer, "BATCH_SIZE", 7)
    real_write = importer.write_rows
    calls: list[int] = []

    def die_on_third(plan: importer.ImportPlan, rows: importer.Rows) -> int:
        calls.append(len(rows.values))
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return real_write(plan, rows)

    monkeypatch.setattr(importer, "write_rows", die_on_third)
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path, sample_lines())

    # When the import runs, then runs again with a healthy writer
    with pytest.raises(RuntimeError, match="worker killed"):
        import_whatsapp(user, path, settings, me="Sam Carter")
    failed = Import.get()
    stored_first = Message.select().count()
    monkeypatch.setattr(importer, "write_rows", real_write)
    rerun = import_whatsapp(user, path, settings, me="Sam Carter")

    # Then the first import is marked failed and the rerun adds only the rest
    total = rerun.stats["parsed_messages"]
    assert failed.status == "failed"
    assert "worker killed" in failed.error
    assert stored_first < total
    assert rerun.status == "done"
    assert rerun.stats["duplicates_skipped"] == stored_first
    assert Message.select().count() == total
    assert Attachment.select().count() == rerun.stats["parsed_media"]


def test_import_inside_caller_transaction(
    settings: Settings,
    db: peewee.Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given batches of 7 messages and a caller with an open transaction
    monkeypatch.setattr(importer, "BATCH_SIZE", 7)
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path, sample_lines())

    # When the import runs inside it
    with db.atomic():
        result = import_whatsapp(user, path, settings, me="Sam Carter")

    # Then the batches are written on the connection of that transaction
    assert result.status == "done"
    assert Message.select().count() == result.stats["parsed_messages"]
    assert Attachment.select().count() == result.stats["media"]
