"""Import a WhatsApp export again: renamed copies and new readings of one file."""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import zipfile
from pathlib import Path
from typing import Any

import peewee
import pytest

from tests.chats import generated_chat
from wallie.db.models import (
    Attachment,
    Contact,
    Conversation,
    Entity,
    Import,
    LeadScore,
    Message,
    Reminder,
    User,
)
from wallie.settings import Settings
from wallie.storage import get_or_create_user
from wallie.whatsapp import importer
from wallie.whatsapp.importer import (
    chunk_folder,
    import_whatsapp,
    split_into_chunks,
    store_chunk,
)
from wallie.whatsapp.reimport import ImportInProgressError, ImportReplacedError

from .test_importer import sample_lines, write_chat

#: Dates of the sample chat and the same days with a day of the month under 13,
#: so that either order reads them.
_AMBIGUOUS_DATES = {
    "11/23/26": "11/03/26",
    "11/24/26": "11/04/26",
    "11/25/26": "11/05/26",
    "11/27/26": "11/07/26",
}


def ambiguous_lines() -> list[str]:
    """Return the sample chat with dates that read in both dmy and mdy order."""
    lines = []
    for line in sample_lines():
        for date, ambiguous in _AMBIGUOUS_DATES.items():
            line = line.replace(date, ambiguous)
        lines.append(line)
    return lines


def ambiguous_zip(folder: Path, name: str = "WhatsApp Chat with Ana Souza.zip") -> Path:
    """Write the ambiguous chat as a zip export with its voice note and PDF."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / name
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("WhatsApp Chat with Ana Souza.txt", "".join(ambiguous_lines()))
        writer.writestr("PTT-20261123-WA0004.opus", b"OggS" + b"\0" * 60)
        writer.writestr("Souza_Imports_Quote_Q-2611.pdf", b"%PDF-1.4 quote")
    return archive


def british_user() -> User:
    """Return a user whose locale reads ambiguous dates day first."""
    user, _ = get_or_create_user("sam@example.com", locale="en-GB")
    return user


def test_renamed_copy_stores_nothing(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an export imported once
    user = british_user()
    original = write_chat(tmp_path, sample_lines(), "ana.txt")
    first = import_whatsapp(user, original, settings, me="Sam Carter")

    # When a copy of it under another name is imported
    copy = write_chat(tmp_path, sample_lines(), "ana-copy.txt")
    again = import_whatsapp(user, copy, settings, me="Sam Carter")

    # Then it goes into the same chat and every message counts as a duplicate
    total = first.stats["parsed_messages"]
    assert again.conversation_id == first.conversation_id
    assert again.stats["messages"] == 0
    assert again.stats["system_messages"] == 0
    assert again.stats["duplicates_skipped"] == total
    assert again.stats["same_file_as_import"] == first.import_id
    assert again.stats["replaced_import"] is None
    assert Message.select().count() == total
    assert Conversation.select().count() == 1
    assert Attachment.select().count() == first.stats["media"]
    assert Import.get_by_id(first.import_id).status == "done"


def test_first_import_names_no_earlier_one(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    user = british_user()

    result = import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings,
                             me="Sam Carter")

    assert result.stats["same_file_as_import"] is None
    assert result.stats["replaced_import"] is None
    assert result.stats["replaced"] == []


def test_copy_of_failed_import_adds_the_rest(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an import that failed after storing part of the chat
    user = british_user()
    first = import_whatsapp(user, write_chat(tmp_path, sample_lines(), "ana.txt"),
                            settings, me="Sam Carter")
    kept = list(Message.select().order_by(Message.id).limit(10))
    Message.delete().where(Message.id.not_in([m.id for m in kept])).execute()
    Import.update(status="failed").where(Import.id == first.import_id).execute()

    # When a renamed copy is imported the same way
    copy = write_chat(tmp_path, sample_lines(), "ana-copy.txt")
    again = import_whatsapp(user, copy, settings, me="Sam Carter")

    # Then the copy adds the missing messages to the same chat, and no more
    total = first.stats["parsed_messages"]
    assert again.conversation_id == first.conversation_id
    assert again.stats["duplicates_skipped"] == 10
    assert again.stats["same_file_as_import"] is None
    assert Message.select().count() == total


def test_new_date_order_replaces_import(
    settings: Settings,
    db: peewee.Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a zip export whose dates were read day first from the locale
    user = british_user()
    archive = ambiguous_zip(tmp_path)
    first = import_whatsapp(user, archive, settings, me="Sam Carter")
    assert first.stats["date_order"] == "dmy"
    assert first.stats["date_order_source"] == "locale"
    old_files = [settings.media_dir / row.path for row in Attachment.select()]
    assert len(old_files) == 2
    assert all(path.is_file() for path in old_files)
    contacts = Contact.select().count()

    # And a reminder and an entity found in one of its messages
    message = Message.select().where(Message.direction == "outbound").first()
    Reminder.create(user=user, key="promise-1", source_message=message,
                    conversation=message.conversation_id, text="Call Ana",
                    due_at=datetime.datetime(2026, 3, 12, tzinfo=datetime.UTC))
    Entity.create(user=user, message=message, kind="amount", value="1200")

    # When the same file is imported again with the month first
    caplog.set_level(logging.INFO, logger="wallie.whatsapp.reimport")
    again = import_whatsapp(user, archive, settings, me="Sam Carter", date_order="mdy")

    # Then the earlier messages and what hangs off them are gone
    total = first.stats["parsed_messages"]
    assert again.stats["replaced_import"] == first.import_id
    assert again.stats["messages"] == first.stats["messages"]
    assert again.stats["duplicates_skipped"] == 0
    assert Message.select().count() == total
    assert Message.select().where(Message.source_import == first.import_id).count() == 0
    assert Reminder.select().count() == 0
    assert Entity.select().count() == 0
    assert not any(path.exists() for path in old_files)
    assert not (settings.media_dir / str(user.id) / str(first.import_id)).exists()

    # And the new messages carry the month-first dates and their own media
    first_message = Message.select().order_by(Message.sent_at).first()
    assert first_message.sent_at.month == 11
    assert first_message.sent_at.day == 3
    new_files = [settings.media_dir / row.path for row in Attachment.select()]
    assert len(new_files) == 2
    assert all(path.is_file() for path in new_files)

    # And the chat, the contacts and the earlier import row stay
    replaced = Import.get_by_id(first.import_id)
    assert again.conversation_id == first.conversation_id
    assert Conversation.select().count() == 1
    assert Contact.select().count() == contacts
    assert replaced.status == "replaced"
    assert replaced.stats["replaced_by"] == again.import_id
    assert [entry["date_order"] for entry in again.stats["replaced"]] == ["dmy"]
    assert any(
        f"Import {again.import_id} replaced import {first.import_id}" in text
        for _, _, text in caplog.record_tuples
    )


def test_same_date_order_again_replaces_nothing(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an ambiguous export read month first, then the same again
    user = british_user()
    path = write_chat(tmp_path, ambiguous_lines())
    first = import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")

    again = import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")

    # Then nothing is replaced and nothing is stored twice
    assert again.stats["replaced_import"] is None
    assert again.stats["same_file_as_import"] == first.import_id
    assert Import.get_by_id(first.import_id).status == "done"
    assert Message.select().count() == first.stats["parsed_messages"]


def test_renamed_copy_with_new_date_order_replaces_both(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a file read day first, and a renamed copy read the same way
    user = british_user()
    first = import_whatsapp(user, write_chat(tmp_path, ambiguous_lines(), "a.txt"),
                            settings, me="Sam Carter")
    second = import_whatsapp(user, write_chat(tmp_path, ambiguous_lines(), "b.txt"),
                             settings, me="Sam Carter")

    # When a third copy is read month first
    third = import_whatsapp(user, write_chat(tmp_path, ambiguous_lines(), "c.txt"),
                            settings, me="Sam Carter", date_order="mdy")

    # Then both earlier imports are replaced and each message is stored once
    replaced = [entry["import_id"] for entry in third.stats["replaced"]]
    assert replaced == [first.import_id, second.import_id]
    assert third.stats["replaced_import"] == second.import_id
    assert third.stats["messages"] == first.stats["messages"]
    assert Message.select().count() == first.stats["parsed_messages"]
    assert Conversation.select().count() == 1


def test_going_back_to_first_date_order(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a file read day first, then replaced by a month-first reading
    user = british_user()
    path = write_chat(tmp_path, ambiguous_lines())
    first = import_whatsapp(user, path, settings, me="Sam Carter")
    second = import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")

    # When it is read day first again
    third = import_whatsapp(user, path, settings, me="Sam Carter", date_order="dmy")

    # Then only the month-first import is replaced, since the first one has
    # no messages left
    replaced = [entry["import_id"] for entry in third.stats["replaced"]]
    assert replaced == [second.import_id]
    assert third.stats["same_file_as_import"] is None
    assert third.stats["messages"] == first.stats["messages"]
    assert Message.select().count() == first.stats["parsed_messages"]


def test_other_me_replaces_import(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a chat imported with the wrong participant as the user
    user = british_user()
    path = write_chat(tmp_path, sample_lines())
    first = import_whatsapp(user, path, settings, me="Ana Souza")

    # When it is imported again with the right one
    again = import_whatsapp(user, path, settings, me="Sam Carter")

    # Then the messages are stored once, with Sam's as outbound
    sam = Contact.get(Contact.name == "Sam Carter")
    outbound = Message.select().where(Message.direction == "outbound")
    assert again.stats["replaced_import"] == first.import_id
    assert again.stats["replaced"][0]["me"] == "Ana Souza"
    assert Message.select().count() == first.stats["parsed_messages"]
    assert {message.sender_id for message in outbound} == {sam.id}


def test_other_me_hands_over_own_contact(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a chat imported with the wrong participant as the user, whose
    # analysis scored the right one as a lead
    user = british_user()
    path = write_chat(tmp_path, sample_lines())
    first = import_whatsapp(user, path, settings, me="Ana Souza")
    sam = Contact.get(Contact.name == "Sam Carter")
    LeadScore.create(user=user, contact=sam, conversation=first.conversation_id, score=70)

    # When it is imported again with the right one
    import_whatsapp(user, path, settings, me="Sam Carter")

    # Then Sam is the user's own contact, Ana is not, and Sam has no score
    assert Contact.get_by_id(sam.id).is_self
    assert not Contact.get(Contact.name == "Ana Souza").is_self
    assert LeadScore.select().where(LeadScore.contact == sam).count() == 0


def test_other_me_keeps_own_contact_of_other_chats(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given Ana as the user in another chat, and in this one by mistake
    user = british_user()
    other = ["14/02/2024, 09:00 - Ana Souza: hello Ben\n",
             "14/02/2024, 09:01 - Ben Okafor: hi Ana\n"]
    import_whatsapp(user, write_chat(tmp_path / "other", other), settings, me="Ana Souza")
    path = write_chat(tmp_path, sample_lines())
    import_whatsapp(user, path, settings, me="Ana Souza")

    # When this chat is imported again with Sam as the user
    import_whatsapp(user, path, settings, me="Sam Carter")

    # Then Ana stays the user's own contact, for the other chat
    assert Contact.get(Contact.name == "Ana Souza").is_self
    assert Contact.get(Contact.name == "Sam Carter").is_self


def test_batch_import_replaces_import(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an ambiguous export read day first
    user = british_user()
    path = write_chat(tmp_path, ambiguous_lines())
    first = import_whatsapp(user, path, settings, me="Sam Carter")

    # When it is imported again month first, split into chunks
    import_id, chunks = split_into_chunks(user, path, settings, me="Sam Carter",
                                          date_order="mdy", chunk_size=10)
    results = [store_chunk(settings, import_id, number) for number in range(1, chunks + 1)]

    # Then the split replaced the earlier import before any chunk was stored
    final = results[-1]
    assert final is not None
    assert final.stats["replaced_import"] == first.import_id
    assert final.stats["messages"] == first.stats["messages"]
    assert Message.select().count() == first.stats["parsed_messages"]
    assert Import.get_by_id(first.import_id).status == "replaced"


def _batch_in_progress(settings: Settings, tmp_path: Path) -> tuple[User, Path, int, int]:
    """Start a batch import of the ambiguous chat and store only its first chunk.

    The chat is split day first, with Sam as the user.

    Returns:
      The user, the export, the import id and the number of chunks.
    """
    user = british_user()
    path = write_chat(tmp_path, ambiguous_lines())
    import_id, chunks = split_into_chunks(user, path, settings, me="Sam Carter",
                                          chunk_size=10)
    store_chunk(settings, import_id, 1)
    return user, path, import_id, chunks


def test_new_reading_waits_for_batch_in_progress(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an ambiguous export split into chunks day first, of which workers
    # have stored only the first
    user, path, import_id, chunks = _batch_in_progress(settings, tmp_path)
    stored = Message.select().count()
    contacts = Contact.select().count()

    # When it is imported again month first
    with pytest.raises(ImportInProgressError) as raised:
        import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")

    # Then the new reading is rejected, naming the batch import, and nothing
    # of the batch import is deleted
    assert raised.value.import_id == import_id
    assert f"Import {import_id}" in str(raised.value)
    assert Message.select().count() == stored
    assert Import.select().count() == 1
    assert Contact.select().count() == contacts

    # When the batch import ends, the new reading replaces it
    for number in range(2, chunks + 1):
        store_chunk(settings, import_id, number)
    again = import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")
    assert again.stats["replaced_import"] == import_id
    assert Message.select().count() == again.stats["parsed_messages"]


def test_same_reading_goes_on_beside_batch_in_progress(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a batch import of which workers have stored only the first chunk
    user, path, _, _ = _batch_in_progress(settings, tmp_path)

    # When the file is imported again, read the same way
    again = import_whatsapp(user, path, settings, me="Sam Carter")

    # Then it stores the rest once, and replaces nothing
    assert again.stats["replaced"] == []
    assert Message.select().count() == again.stats["parsed_messages"]


def test_rejected_reading_keeps_own_contact(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a batch import taking Sam as the user, still being stored
    user, path, _, _ = _batch_in_progress(settings, tmp_path)

    # When the file is imported again with Ana as the user, and rejected
    with pytest.raises(ImportInProgressError):
        import_whatsapp(user, path, settings, me="Ana Souza")

    # Then Ana did not become the user's own contact
    assert not Contact.get(Contact.name == "Ana Souza").is_self
    assert Contact.get(Contact.name == "Sam Carter").is_self


def test_abandoned_batch_is_replaced(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a batch import that stopped after its first chunk a day ago
    user, path, import_id, _ = _batch_in_progress(settings, tmp_path)
    a_day_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    Import.update(created_at=a_day_ago).where(Import.id == import_id).execute()

    # When the file is imported again month first
    again = import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")

    # Then the abandoned import is replaced, and each message is stored once
    assert again.stats["replaced_import"] == import_id
    assert Import.get_by_id(import_id).status == "replaced"
    assert Message.select().count() == again.stats["parsed_messages"]
    assert not chunk_folder(settings, import_id).exists()


def test_new_reading_waits_for_one_job_import(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an ambiguous export imported day first in one job
    user = british_user()
    path = write_chat(tmp_path, ambiguous_lines())
    rejected = []

    def import_again(done: int, total: int) -> None:
        # When it is imported again month first while the first import runs
        with pytest.raises(ImportInProgressError) as raised:
            import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")
        rejected.append(raised.value)

    first = import_whatsapp(user, path, settings, me="Sam Carter", progress=import_again)

    # Then the new reading is rejected, naming the running import, and the
    # first import stores each message once
    [error] = rejected
    assert error.import_id == first.import_id
    assert "still being stored (status running)" in str(error)
    assert first.status == "done"
    assert Import.select().count() == 1
    assert Message.select().count() == first.stats["parsed_messages"]


def test_stalled_one_job_import_is_replaced(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a one-job import that started an hour ago and still shows running
    user = british_user()
    path = write_chat(tmp_path, ambiguous_lines())
    first = import_whatsapp(user, path, settings, me="Sam Carter")
    now = datetime.datetime.now(datetime.UTC)
    row = Import.get_by_id(first.import_id)
    progress = row.stats["progress"]
    Import.update(status="running", created_at=now - datetime.timedelta(hours=1),
                  finished_at=None).where(Import.id == first.import_id).execute()

    # When its progress moved 5 minutes ago, a new reading waits for it
    stats = {**row.stats, "progress": {
        **progress, "updated_at": (now - datetime.timedelta(minutes=5)).isoformat()}}
    Import.update(stats=stats).where(Import.id == first.import_id).execute()
    with pytest.raises(ImportInProgressError):
        import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")

    # When its progress stopped an hour ago, a new reading replaces it
    stats["progress"]["updated_at"] = (now - datetime.timedelta(hours=1)).isoformat()
    Import.update(stats=stats).where(Import.id == first.import_id).execute()
    again = import_whatsapp(user, path, settings, me="Sam Carter", date_order="mdy")

    assert again.stats["replaced_import"] == first.import_id
    assert Import.get_by_id(first.import_id).status == "replaced"
    assert Message.select().count() == again.stats["parsed_messages"]


def test_replaced_one_job_import_stops(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a one-job import of more than one batch that shows no progress
    # for an hour after its first batch, while its process is still alive
    user = british_user()
    path = generated_chat(tmp_path / "chat.txt", importer.BATCH_SIZE * 2 + 100)
    newer = []

    def replace_after_first_batch(done: int, total: int) -> None:
        if newer:
            return

        row = Import.select().order_by(Import.id).get()
        an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
        progress = {**row.stats["progress"], "updated_at": an_hour_ago.isoformat()}
        Import.update(stats={**row.stats, "progress": progress}).where(
            Import.id == row.id
        ).execute()
        # When a new reading replaces it meanwhile
        newer.append(import_whatsapp(user, path, settings, me="Ana Souza"))

    with pytest.raises(ImportReplacedError) as raised:
        import_whatsapp(user, path, settings, me="Sam Carter",
                        progress=replace_after_first_batch)

    # Then the old import stops, stays replaced, and keeps none of its messages
    [again] = newer
    old_id = raised.value.import_id
    assert again.stats["replaced_import"] == old_id
    assert Import.get_by_id(old_id).status == "replaced"
    assert Message.select().where(Message.source_import == old_id).count() == 0
    assert Message.select().count() == again.stats["parsed_messages"]


def test_two_new_readings_at_once_store_one(
    settings: Settings, db: peewee.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two imports of one file, day first and month first, that start
    # together in two threads
    user = british_user()
    path = write_chat(tmp_path, ambiguous_lines())
    both_planned = threading.Barrier(2, timeout=1)
    add_participants = importer.add_participants

    def add_together(*args: Any, **kwargs: Any) -> Any:
        # Between planning and creating its import row, wait up to a second
        # for the other import to get this far too
        with contextlib.suppress(threading.BrokenBarrierError):
            both_planned.wait()
        return add_participants(*args, **kwargs)

    monkeypatch.setattr(importer, "add_participants", add_together)
    errors: list[BaseException] = []

    def run(order: str) -> None:
        try:
            with db.connection_context():
                import_whatsapp(user, path, settings, me="Sam Carter", date_order=order)
        except ImportInProgressError as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(order,)) for order in ("dmy", "mdy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then the second either waits for the first or replaces it, and each
    # message is stored once
    statuses = sorted(row.status for row in Import.select())
    assert len(errors) == 1 or statuses == ["done", "replaced"]
    assert Message.select().count() == 42


def test_other_users_import_is_untouched(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given two users who imported the same file day first
    path = write_chat(tmp_path, ambiguous_lines())
    sam = british_user()
    kim, _ = get_or_create_user("kim@example.com", locale="en-GB")
    import_whatsapp(sam, path, settings, me="Sam Carter")
    kims = import_whatsapp(kim, path, settings, me="Sam Carter")

    # When one of them imports it again month first
    again = import_whatsapp(sam, path, settings, me="Sam Carter", date_order="mdy")

    # Then the other user's import and messages stay
    assert again.stats["replaced_import"] is not None
    assert again.stats["replaced_import"] != kims.import_id
    assert Import.get_by_id(kims.import_id).status == "done"
    assert Message.select().where(Message.user == kim).count() == kims.stats[
        "parsed_messages"]
