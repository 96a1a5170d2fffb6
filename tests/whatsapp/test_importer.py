"""Import WhatsApp exports into storage on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import peewee
import pytest

from wallie.db.models import Attachment, Contact, Conversation, Import, Message, User
from wallie.settings import Settings
from wallie.storage import find_or_create_contact, get_or_create_user
from wallie.whatsapp import NotAnExportError, importer
from wallie.whatsapp.importer import (
    LocalClock,
    MeRequiredError,
    chat_name,
    chunk_folder,
    import_whatsapp,
    split_into_chunks,
    store_chunk,
)

from .corpus_expected import EXPECTED, Expected


def sample_lines() -> list[str]:
    """Return the lines of the packaged sample chat."""
    sample = resources.files("wallie") / "samples" / "whatsapp_sample.txt"
    return sample.read_text(encoding="utf-8").splitlines(keepends=True)


def write_chat(folder: Path, lines: list[str], name: str = "WhatsApp Chat with Ana.txt"
               ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_chat_name_strips_export_prefix_and_copy_suffix() -> None:
    assert chat_name(Path("WhatsApp Chat with Ana Souza (1).zip")) == "Ana Souza"


@pytest.mark.parametrize(
    "expected", EXPECTED, ids=[f"{e.file[:2]}-{e.fallback}" for e in EXPECTED]
)
def test_corpus_file_imports_expected_counts(
    whatsapp_corpus: Path, settings: Settings, db: peewee.Database, expected: Expected
) -> None:
    # Given a user whose locale gives the corpus file's fallback date order
    locale = "en-US" if expected.fallback == "mdy" else "en-GB"
    user, _ = get_or_create_user("sam@example.com", locale=locale)

    # When the file is imported as its first participant
    result = import_whatsapp(
        user, whatsapp_corpus / expected.file, settings, me=expected.participants[0]
    )

    # Then the stored counts match the parser's hand-checked values
    stats = result.stats
    assert stats["messages"] == expected.messages - expected.system
    assert stats["system_messages"] == expected.system
    assert stats["media"] == expected.media
    assert stats["participants"] == expected.participants
    assert stats["date_order"] == expected.date_order
    assert stats["unparsed_lines"] == expected.unparsed
    assert Message.select().count() == expected.messages
    assert result.status == ("partial" if expected.unparsed else "done")


def test_reimport_adds_nothing(settings: Settings, db: peewee.Database, tmp_path: Path
                               ) -> None:
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path / "a", sample_lines())
    first = import_whatsapp(user, path, settings, me="Sam Carter")

    again = import_whatsapp(user, path, settings, me="Sam Carter")

    assert again.stats["messages"] == 0
    assert again.stats["duplicates_skipped"] == first.stats["parsed_messages"]
    assert Message.select().count() == first.stats["parsed_messages"]
    assert Attachment.select().count() == first.stats["media"]


def test_overlapping_export_adds_only_new_messages(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an export of the first 30 lines, then a later one from line 10 on
    lines = sample_lines()
    user, _ = get_or_create_user("sam@example.com")
    early = import_whatsapp(user, write_chat(tmp_path / "a", lines[:30]), settings,
                            me="Sam Carter")
    later = import_whatsapp(user, write_chat(tmp_path / "b", lines[10:]), settings,
                            me="Sam Carter")

    # Then the later export adds only the messages after line 30, in the same chat
    assert later.conversation_id == early.conversation_id
    assert later.stats["duplicates_skipped"] == early.stats["parsed_messages"] - 10
    assert Message.select().count() == 10 + later.stats["parsed_messages"]
    assert Message.select().count() == 42


def test_later_export_under_other_name_joins_its_chat(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an export of the first 30 lines, then a later one from line 10 on,
    # saved under file names that do not name the chat
    lines = sample_lines()
    user, _ = get_or_create_user("sam@example.com")
    early = import_whatsapp(user, write_chat(tmp_path / "a", lines[:30], "chat.txt"),
                            settings, me="Sam Carter")
    later = import_whatsapp(user, write_chat(tmp_path / "b", lines[10:], "cont.txt"),
                            settings, me="Sam Carter")

    # Then the later export continues the same chat and adds only new messages
    assert later.conversation_id == early.conversation_id
    assert Conversation.select().count() == 1
    assert later.stats["duplicates_skipped"] == early.stats["parsed_messages"] - 10
    assert Message.select().count() == 42


def test_chat_sharing_one_message_stays_apart(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given two chats with the same contact, saved under file names that do
    # not name them, which share only one message word for word
    user, _ = get_or_create_user("sam@example.com")
    shared = "12/03/2024, 09:00 - Sam Carter: ok\n"
    first = [shared] + [
        f"12/03/2024, 10:{minute:02d} - Ana: first chat {minute}\n" for minute in range(20)
    ]
    second = [shared] + [
        f"13/03/2024, 11:{minute:02d} - Ana: second chat {minute}\n" for minute in range(20)
    ]
    first_import = import_whatsapp(
        user, write_chat(tmp_path / "a", first, "one.txt"), settings, me="Sam Carter"
    )

    # When the second is imported
    second_import = import_whatsapp(
        user, write_chat(tmp_path / "b", second, "two.txt"), settings, me="Sam Carter"
    )

    # Then it is a chat of its own, and its copy of the shared message stays
    assert second_import.conversation_id != first_import.conversation_id
    assert second_import.stats["messages"] == 21
    assert Message.select().count() == 42


def numbered_lines(count: int) -> list[str]:
    """Return ``count`` lines of a chat between Ana and Sam Carter, 7 minutes apart."""
    start = datetime.datetime(2024, 3, 1, 9, 0)
    lines = []
    for number in range(count):
        sent = start + datetime.timedelta(minutes=7 * number)
        sender = "Sam Carter" if number % 2 else "Ana"
        lines.append(f"{sent:%d/%m/%Y, %H:%M} - {sender}: message {number}\n")
    return lines


def test_wider_later_export_joins_chat(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given an export of messages 100 to 199 of a chat, saved as chat.txt
    lines = numbered_lines(300)
    user, _ = get_or_create_user("sam@example.com")
    early = import_whatsapp(user, write_chat(tmp_path / "a", lines[100:200], "chat.txt"),
                            settings, me="Sam Carter")

    # When a later export of all 300 messages is imported as cont.txt
    later = import_whatsapp(user, write_chat(tmp_path / "b", lines, "cont.txt"),
                            settings, me="Sam Carter")

    # Then it continues the same chat and stores only the 200 new messages
    assert later.conversation_id == early.conversation_id
    assert Conversation.select().count() == 1
    assert later.stats["messages"] == 200
    assert later.stats["duplicates_skipped"] == 100
    assert Message.select().count() == 300


def forwarded_lines() -> list[str]:
    """Return three messages that Sam Carter forwarded to several chats at once."""
    return [f"05/03/2024, 12:00 - Sam Carter: Price list, part {part}\n" for part in range(3)]


#: Chats to both of which Sam forwarded the same three messages at once:
#: the earlier export with its file name, the later one, saved as chat.txt,
#: its message count and whether it is a group.
_FORWARD_CASES = [
    pytest.param(
        ["04/03/2024, 10:00 - Bob: hi Sam\n", *forwarded_lines(),
         "05/03/2024, 12:05 - Bob: thanks\n"],
        "WhatsApp Chat with Bob.txt",
        ["01/03/2024, 08:00 - Ana: welcome\n", "01/03/2024, 08:01 - Bob: hello all\n",
         *forwarded_lines(), "05/03/2024, 12:10 - Ana: great\n"],
        6, True,
        id="group-after-chat",
    ),
    pytest.param(
        ["01/03/2024, 08:00 - Ana: welcome\n", "01/03/2024, 08:01 - Bob: hello all\n",
         *forwarded_lines()],
        "WhatsApp Chat with Team.txt",
        ["04/03/2024, 10:00 - Bob: hi Sam\n", *forwarded_lines()],
        4, False,
        id="chat-after-group",
    ),
    pytest.param(
        ["01/03/2024, 08:00 - Ana: welcome\n", "01/03/2024, 08:01 - Bob: hello\n",
         *forwarded_lines()],
        "WhatsApp Chat with Sales.txt",
        ["02/03/2024, 08:00 - Lia: hi all\n", "02/03/2024, 08:01 - Bob: hey\n",
         *forwarded_lines()],
        5, True,
        id="group-after-group",
    ),
]


@pytest.mark.parametrize(("earlier", "earlier_name", "later", "messages", "is_group"),
                         _FORWARD_CASES)
def test_chats_sharing_forwards_stay_apart(
    settings: Settings, db: peewee.Database, tmp_path: Path, earlier: list[str],
    earlier_name: str, later: list[str], messages: int, is_group: bool,
) -> None:
    # Given an imported chat with Bob to which Sam forwarded three messages
    user, _ = get_or_create_user("sam@example.com")
    first = import_whatsapp(user, write_chat(tmp_path / "a", earlier, earlier_name),
                            settings, me="Sam Carter")

    # When another chat with Bob, with the same forwards, is imported as chat.txt
    second = import_whatsapp(user, write_chat(tmp_path / "b", later, "chat.txt"), settings,
                             me="Sam Carter")

    # Then it is a chat of its own with all of its messages
    assert second.conversation_id != first.conversation_id
    assert second.stats["messages"] == messages
    assert second.stats["duplicates_skipped"] == 0
    assert Conversation.get_by_id(second.conversation_id).is_group == is_group


def test_directions_follow_me(settings: Settings, db: peewee.Database, tmp_path: Path
                              ) -> None:
    user, _ = get_or_create_user("sam@example.com")
    import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings, me="sam carter")

    sam = Contact.get(Contact.name == "Sam Carter")
    outbound = Message.select().where(Message.direction == "outbound")
    system = Message.select().where(Message.direction == "system")
    assert sam.is_self
    assert {message.sender_id for message in outbound} == {sam.id}
    assert all(message.sender_id is None for message in system)
    assert Contact.get_or_none(Contact.phone == "+14155550132") is not None


def test_flags_deleted_and_edited(settings: Settings, db: peewee.Database, tmp_path: Path
                                  ) -> None:
    user, _ = get_or_create_user("sam@example.com")
    import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings, me="Sam Carter")

    assert Message.select().where(Message.is_deleted).count() == 1
    assert Message.select().where(Message.is_edited).count() == 1


def test_me_from_user_name(settings: Settings, db: peewee.Database, tmp_path: Path) -> None:
    user, _ = get_or_create_user("sam@example.com", name="Sam Carter")

    result = import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings)

    assert result.stats["messages"] == 38


def test_me_from_own_contact(settings: Settings, db: peewee.Database, tmp_path: Path) -> None:
    user, _ = get_or_create_user("sam@example.com")
    find_or_create_contact(user, name="Sam Carter", is_self=True)

    result = import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings)

    assert result.stats["messages"] == 38


def test_unclear_me_stores_nothing(settings: Settings, db: peewee.Database, tmp_path: Path
                                   ) -> None:
    user, _ = get_or_create_user("sam@example.com")

    with pytest.raises(MeRequiredError) as raised:
        import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings)

    assert raised.value.participants == ["+14155550132", "Ana Souza", "Sam Carter"]
    assert "'Ana Souza'" in str(raised.value)
    assert Import.select().count() == 0
    assert Contact.select().count() == 0
    assert Message.select().count() == 0


def test_unknown_me_lists_participants(settings: Settings, db: peewee.Database,
                                       tmp_path: Path) -> None:
    user, _ = get_or_create_user("sam@example.com")

    with pytest.raises(MeRequiredError, match="No participant .* is 'Bob'"):
        import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings, me="Bob")


def test_not_an_export_stores_nothing(settings: Settings, db: peewee.Database,
                                      tmp_path: Path) -> None:
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path, ["Shopping list\n", "milk\n"])

    with pytest.raises(NotAnExportError):
        import_whatsapp(user, path, settings, me="Sam")

    assert Import.select().count() == 0


def test_zip_links_media_and_marks_voice_notes(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    # Given a zip export holding the chat, a voice note and a PDF
    archive = tmp_path / "WhatsApp Chat with Ana Souza.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("WhatsApp Chat with Ana Souza.txt", "".join(sample_lines()))
        writer.writestr("PTT-20261123-WA0004.opus", b"OggS" + b"\0" * 60)
        writer.writestr("Souza_Imports_Quote_Q-2611.pdf", b"%PDF-1.4 quote")
    user, _ = get_or_create_user("sam@example.com")

    # When it is imported
    result = import_whatsapp(user, archive, settings, me="Sam Carter")

    # Then both files are extracted under media/<user>/<import>/ and linked
    voice = Attachment.get(Attachment.file_name == "PTT-20261123-WA0004.opus")
    quote = Attachment.get(Attachment.file_name == "Souza_Imports_Quote_Q-2611.pdf")
    assert voice.path == f"{user.id}/{result.import_id}/PTT-20261123-WA0004.opus"
    assert (settings.media_dir / voice.path).read_bytes().startswith(b"OggS")
    assert voice.transcription_status == "pending"
    assert quote.transcription_status == ""
    assert quote.size_bytes == len(b"%PDF-1.4 quote")
    assert result.voice_note_ids == [voice.id]


def test_text_export_voice_note_without_file_is_missing(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    user, _ = get_or_create_user("sam@example.com")
    result = import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings,
                             me="Sam Carter")

    voice = Attachment.get(Attachment.file_name == "PTT-20261123-WA0004.opus")
    assert voice.transcription_status == "missing"
    assert result.voice_note_ids == []


def test_times_read_in_user_zone(settings: Settings, db: peewee.Database, tmp_path: Path
                                 ) -> None:
    user, _ = get_or_create_user("sam@example.com", time_zone="America/Chicago")

    result = import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings,
                             me="Sam Carter")

    first = Message.select().order_by(Message.sent_at).first()
    assert first.sent_at == datetime.datetime(2026, 11, 23, 15, 12, tzinfo=datetime.UTC)
    assert result.stats["first_message_at"] == "2026-11-23T09:12:00-06:00"


def test_clock_repeated_hour_keeps_order() -> None:
    # Given the hour 01:00-02:00 that happens twice on 2026-11-01 in Chicago
    clock = LocalClock(ZoneInfo("America/Chicago"))
    first = clock.to_utc(datetime.datetime(2026, 11, 1, 1, 50))

    # When a message at 01:10 follows one at 01:50
    second = clock.to_utc(datetime.datetime(2026, 11, 1, 1, 10))

    # Then it is read in the second 01:xx hour, after the first message
    assert second > first


def test_clock_first_occurrence_by_default() -> None:
    clock = LocalClock(ZoneInfo("America/Chicago"))

    moment = clock.to_utc(datetime.datetime(2026, 11, 1, 1, 30))

    assert moment == datetime.datetime(2026, 11, 1, 6, 30, tzinfo=datetime.UTC)


def test_clock_skipped_hour_moves_forward() -> None:
    clock = LocalClock(ZoneInfo("America/Chicago"))

    moment = clock.to_utc(datetime.datetime(2026, 3, 8, 2, 30))

    assert moment == datetime.datetime(2026, 3, 8, 8, 30, tzinfo=datetime.UTC)


def test_chunks_store_once_and_finish(settings: Settings, db: peewee.Database,
                                      tmp_path: Path) -> None:
    # Given the sample split into chunks of 10 messages
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path, sample_lines())
    import_id, chunks = split_into_chunks(user, path, settings, me="Sam Carter",
                                          chunk_size=10)

    # When every chunk is stored, the second one twice
    results = [store_chunk(settings, import_id, chunk) for chunk in range(1, chunks)]
    files_before_last = sorted(chunk_folder(settings, import_id).iterdir())
    results.append(store_chunk(settings, import_id, chunks))
    repeat = store_chunk(settings, import_id, 2)

    # Then the last chunk finished the import with every message once
    assert chunks == 5
    assert results[:-1] == [None] * (chunks - 1)
    assert results[-1] is not None
    assert results[-1].stats["messages"] == 38
    assert repeat is None
    assert Import.get_by_id(import_id).status == "done"
    assert Message.select().count() == 42
    # And the chunk files stay until the last chunk is stored, then go
    assert len(files_before_last) == chunks
    assert not chunk_folder(settings, import_id).exists()


def test_duplicate_last_chunk_after_finish(settings: Settings, db: peewee.Database,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    # Given a split import with every chunk stored but the last
    user, _ = get_or_create_user("sam@example.com")
    path = write_chat(tmp_path, sample_lines())
    import_id, chunks = split_into_chunks(user, path, settings, me="Sam Carter",
                                          chunk_size=10)
    for number in range(1, chunks):
        store_chunk(settings, import_id, number)

    # When two deliveries of the last chunk's job run, and the first finishes
    # the import and removes the chunk files after the second read the row
    folder = importer.chunk_folder
    finished: list[Any] = []

    def finish_first(*args: Any) -> Path:
        monkeypatch.setattr(importer, "chunk_folder", folder)
        finished.append(store_chunk(settings, import_id, chunks))
        return folder(*args)

    monkeypatch.setattr(importer, "chunk_folder", finish_first)
    second = store_chunk(settings, import_id, chunks)

    # Then the second returns without an error, and the import is done once
    assert finished[0] is not None
    assert second is None
    assert Import.get_by_id(import_id).status == "done"
    assert Message.select().count() == 42


def test_conversation_is_group_with_three_participants(
    settings: Settings, db: peewee.Database, tmp_path: Path
) -> None:
    user, _ = get_or_create_user("sam@example.com")
    result = import_whatsapp(user, write_chat(tmp_path, sample_lines()), settings,
                             me="Sam Carter")

    conversation = Conversation.get_by_id(result.conversation_id)
    assert conversation.is_group
    assert conversation.participants.count() == 3
    assert conversation.last_message_at is not None
    assert User.select().count() == 1
