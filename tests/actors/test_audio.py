"""The audio_received actor on the in-process broker, offline and with a fake OpenAI."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import dramatiq
import numpy as np
import pytest

import actors
from tests.analysis.factory import Chat, make_chat
from tests.audio.conftest import silence, speak, write_opus
from tests.audio.fake_openai import FakeTranscriptionServer, Reply, running_server
from wallie.broker import run_embedded
from wallie.db.models import (
    Attachment,
    JobRun,
    LimitOverride,
    Message,
    Reminder,
    UsageRecord,
)
from wallie.settings import Settings
from wallie.storage import get_or_create_user

API_KEY = "sk-test-not-a-real-key"

#: A promise with a day: the offline rules make a reminder of it.
PROMISE = "I will confirm the order on Friday"

#: Words of the promise that the transcript must contain.
KEY_WORDS = ("confirm", "order", "friday")

#: A sample chat line that the importer stores as a voice note.
VOICE_NOTE = "PTT-20261123-WA0004.opus"


@pytest.fixture(scope="session")
def promise_opus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The promise spoken by espeak-ng, as Ogg/Opus, made once per session."""
    folder = tmp_path_factory.mktemp("speech")
    samples = np.concatenate([silence(0.5), speak(PROMISE, folder), silence(0.5)])
    return write_opus(folder / "promise.opus", samples)


@pytest.fixture
def configure(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Return a function that sets the settings of the audio actor.

    The analysis, outbox and import actors keep the test's settings, with no
    OpenAI key, so the chain after a transcript runs the offline analyzer.
    """
    for module in ("analysis", "outbox", "knowledge"):
        monkeypatch.setattr(f"actors.{module}.get_settings", lambda: settings)

    def apply(**changes: Any) -> Settings:
        configured = settings.replace(**changes)
        monkeypatch.setattr("actors.audio.get_settings", lambda: configured)
        return configured

    apply()
    return apply


@pytest.fixture
def server() -> Iterator[FakeTranscriptionServer]:
    with running_server() as fake:
        yield fake


def voice_note(chat: Chat, settings: Settings, source: Path | bytes) -> Attachment:
    """Store an outbound voice note message with its file under the media folder."""
    message = chat.say("outbound", "")
    target = settings.media_dir / str(chat.user.id) / f"note-{message.id}.opus"
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Path):
        shutil.copyfile(source, target)
    else:
        target.write_bytes(source)

    return Attachment.create(
        user=chat.user,
        message=message,
        kind="audio",
        file_name=target.name,
        content_type="audio/ogg",
        size_bytes=target.stat().st_size,
        path=target.relative_to(settings.media_dir).as_posix(),
        transcription_status="pending",
    )


def transcribe(attachment: Attachment, broker: dramatiq.Broker, **options: Any) -> None:
    actors.audio_received.send(
        user_id=attachment.user_id, attachment_id=attachment.id, **options
    )
    run_embedded(broker)


def runs(actor: str) -> list[JobRun]:
    return list(JobRun.select().where(JobRun.actor == actor).order_by(JobRun.id))


def reminders_of(message_id: int) -> list[Reminder]:
    return list(Reminder.select().where(Reminder.source_message == message_id))


def test_voice_note_becomes_transcript_and_reminder(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    # Given a pending voice note in which the user makes a promise
    chat = make_chat()
    attachment = voice_note(chat, settings, promise_opus)

    # When the actor runs with no OpenAI key
    transcribe(attachment, stub_broker)

    # Then the offline transcript is stored and analysis made a reminder of it
    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "transcribed"
    assert stored.transcript_engine == "offline"
    assert stored.transcript_language == "en"
    assert stored.transcription_error == ""
    for word in KEY_WORDS:
        assert word in stored.transcript.lower()
    message = Message.get_by_id(attachment.message_id)
    assert message.body == stored.transcript
    assert message.analyzed_at is not None
    reminders = reminders_of(message.id)
    assert len(reminders) == 1
    assert "confirm the order" in reminders[0].text.lower()
    assert [run.status for run in runs("audio_received")] == ["succeeded"]
    assert [run.status for run in runs("conversation_analysis")] == ["succeeded"]
    assert UsageRecord.select().count() == 0


def test_second_run_changes_nothing(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    chat = make_chat()
    attachment = voice_note(chat, settings, promise_opus)
    transcribe(attachment, stub_broker)
    body = Message.get_by_id(attachment.message_id).body

    transcribe(attachment, stub_broker)

    assert Reminder.select().count() == 1
    assert Message.get_by_id(attachment.message_id).body == body
    assert [run.status for run in runs("audio_received")] == ["succeeded", "succeeded"]
    assert len(runs("conversation_analysis")) == 1


def test_caption_keeps_its_text_before_transcript(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    chat = make_chat()
    attachment = voice_note(chat, settings, promise_opus)
    Message.update(body="About the shelves").where(
        Message.id == attachment.message_id
    ).execute()

    transcribe(attachment, stub_broker)

    transcript = Attachment.get_by_id(attachment.id).transcript
    body = Message.get_by_id(attachment.message_id).body
    assert body == f"About the shelves\n\n{transcript}"


BAD_FILES = {
    "empty": (b"", "is empty (0 bytes)"),
    "corrupt": (b"OggS" + b"\0" * 60, "does not decode"),
    "not audio": (b"%PDF-1.4 a quote", "looks like a PDF document"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_marked_failed_without_retry(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    kind: str,
) -> None:
    content, reason = BAD_FILES[kind]
    attachment = voice_note(make_chat(), settings, content)

    transcribe(attachment, stub_broker)

    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "failed"
    assert reason in stored.transcription_error
    attempts = runs("audio_received")
    assert [run.status for run in attempts] == ["succeeded"]
    assert reason in attempts[0].reason
    assert runs("conversation_analysis") == []


def test_silent_note_is_marked_silent(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    tmp_path: Path,
) -> None:
    quiet = write_opus(tmp_path / "quiet.opus", silence(2.0))
    attachment = voice_note(make_chat(), settings, quiet)

    transcribe(attachment, stub_broker)

    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "silent"
    assert "silence threshold" in stored.transcription_error
    assert Message.get_by_id(attachment.message_id).body == ""
    assert runs("conversation_analysis") == []


def test_over_long_note_is_rejected_with_reason(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    configure(transcription_max_seconds=1)
    attachment = voice_note(make_chat(), settings, promise_opus)

    transcribe(attachment, stub_broker)

    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "failed"
    assert "more than the limit of 1.0 s" in stored.transcription_error


def test_other_language_is_marked_unsupported_offline(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    chat = make_chat()
    chat.user.locale = "pt-BR"
    chat.user.save()
    attachment = voice_note(chat, settings, promise_opus)

    transcribe(attachment, stub_broker)

    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "unsupported"
    assert stored.transcript == ""
    assert stored.transcript_language == "pt"
    assert "English only" in stored.transcription_error


@pytest.mark.parametrize("form", ["parent references", "absolute"])
def test_path_outside_home_is_rejected(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
    form: str,
) -> None:
    # Given an attachment whose stored path names an existing file elsewhere
    attachment = voice_note(make_chat(), settings, promise_opus)
    outside = f"../../{promise_opus.parent.name}/{promise_opus.name}"
    if form == "absolute":
        outside = str(promise_opus)
    assert (settings.media_dir / outside).resolve() == promise_opus.resolve()
    Attachment.update(path=outside).where(Attachment.id == attachment.id).execute()

    transcribe(attachment, stub_broker)

    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "failed"
    assert "outside WALLIE_HOME" in stored.transcription_error


def test_missing_file_is_marked_failed(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    attachment = voice_note(make_chat(), settings, promise_opus)
    (settings.media_dir / attachment.path).unlink()

    transcribe(attachment, stub_broker)

    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "failed"
    assert "not in the media folder" in stored.transcription_error


def test_other_users_attachment_fails_as_not_found(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    attachment = voice_note(make_chat(), settings, promise_opus)
    stranger, _ = get_or_create_user("eve@example.com")

    actors.audio_received.send(user_id=stranger.id, attachment_id=attachment.id)
    run_embedded(stub_broker)

    attempts = runs("audio_received")
    assert [(run.status, run.error_type) for run in attempts] == [
        ("failed", "NotFound")
    ]
    assert Attachment.get_by_id(attachment.id).transcription_status == "pending"


def test_openai_rate_limit_retries_after_the_hint(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
    server: FakeTranscriptionServer,
) -> None:
    # Given an OpenAI key and a provider that rate-limits the first request
    configure(openai_api_key=API_KEY, openai_base_url=server.base_url)
    body = {
        "error": {
            "message": "Rate limit reached.",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    server.script.append(Reply(429, body, {"retry-after-ms": "50"}))
    server.script.append(Reply(body={"text": "I will confirm the order on Friday."}))
    attachment = voice_note(make_chat(), settings, promise_opus)

    # When the actor runs
    transcribe(attachment, stub_broker)

    # Then the retry stored the provider's transcript, its usage and a reminder
    attempts = runs("audio_received")
    assert [run.status for run in attempts] == ["retrying", "succeeded"]
    assert attempts[0].error_type == "Retry"
    assert len(server.uploads) == 2
    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "transcribed"
    assert stored.transcript_engine == "openai"
    assert stored.transcript == "I will confirm the order on Friday."
    usage = UsageRecord.get()
    assert usage.actor == "audio_received"
    assert usage.calls == 1
    assert usage.audio_seconds >= 3
    assert Decimal(usage.cost_usd) > 0
    assert len(reminders_of(attachment.message_id)) == 1


def test_openai_outage_retries_with_backoff(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
    server: FakeTranscriptionServer,
) -> None:
    configure(openai_api_key=API_KEY, openai_base_url=server.base_url)
    server.script.append(Reply(503, {"error": {"message": "Overloaded."}}))
    server.script.append(Reply(body={"text": "I will confirm the order on Friday."}))
    attachment = voice_note(make_chat(), settings, promise_opus)

    actors.audio_received.send_with_options(
        kwargs={"user_id": attachment.user_id, "attachment_id": attachment.id},
        min_backoff=10,
        max_backoff=50,
    )
    run_embedded(stub_broker)

    attempts = runs("audio_received")
    assert [run.status for run in attempts] == ["retrying", "succeeded"]
    assert attempts[0].error_type == "ProviderUnavailable"
    assert Attachment.get_by_id(attachment.id).transcription_status == "transcribed"


def test_openai_quota_on_auto_falls_back_offline(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
    server: FakeTranscriptionServer,
) -> None:
    configure(openai_api_key=API_KEY, openai_base_url=server.base_url)
    body = {
        "error": {
            "message": "No quota.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    server.script.append(Reply(429, body))
    attachment = voice_note(make_chat(), settings, promise_opus)

    transcribe(attachment, stub_broker)

    attempt = runs("audio_received")[0]
    assert attempt.status == "succeeded"
    assert attempt.reason.startswith("Degraded: ")
    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcript_engine == "offline"
    assert "confirm" in stored.transcript
    assert UsageRecord.select().count() == 0


def test_rejected_key_fails_and_stays_pending(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
    server: FakeTranscriptionServer,
) -> None:
    configure(openai_api_key=API_KEY, openai_base_url=server.base_url)
    server.script.append(Reply(401, {"error": {"message": "Incorrect API key."}}))
    attachment = voice_note(make_chat(), settings, promise_opus)

    transcribe(attachment, stub_broker, engine="openai")

    attempts = runs("audio_received")
    assert [(run.status, run.error_type) for run in attempts] == [
        ("failed", "InvalidApiKey")
    ]
    stored = Attachment.get_by_id(attachment.id)
    assert stored.transcription_status == "pending"
    assert "OPENAI_API_KEY" in stored.transcription_error


def test_cap_reached_goes_offline(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
    server: FakeTranscriptionServer,
) -> None:
    # Given a user whose transcription minutes of the month are used up
    configure(openai_api_key=API_KEY, openai_base_url=server.base_url)
    chat = make_chat()
    LimitOverride.create(
        user=chat.user, name="transcription_minutes_per_month", value="0"
    )
    attachment = voice_note(chat, settings, promise_opus)

    # When a voice note arrives
    transcribe(attachment, stub_broker)

    # Then the offline engine ran, as run history notes, and OpenAI got nothing
    attempt = runs("audio_received")[0]
    assert attempt.status == "succeeded"
    assert attempt.reason.startswith("Degraded: ")
    assert server.uploads == []
    assert Attachment.get_by_id(attachment.id).transcript_engine == "offline"


def test_whatsapp_zip_voice_note_ends_in_reminder(
    stub_broker: dramatiq.Broker,
    configure: Callable[..., Settings],
    settings: Settings,
    promise_opus: Path,
) -> None:
    # Given a zip export of the sample chat whose voice note contains the promise
    sample = resources.files("wallie") / "samples" / "whatsapp_sample.txt"
    upload = settings.home / "uploads" / "WhatsApp Chat with Ana Souza.zip"
    upload.parent.mkdir(parents=True)
    with zipfile.ZipFile(upload, "w") as writer:
        writer.writestr("WhatsApp Chat with Ana Souza.txt", sample.read_bytes())
        writer.write(promise_opus, VOICE_NOTE)
    user, _ = get_or_create_user("sam@example.com")

    # When the upload is imported and every follow-up job runs
    actors.knowledge_import.send(
        user_id=user.id,
        path="uploads/WhatsApp Chat with Ana Souza.zip",
        me="Sam Carter",
    )
    run_embedded(stub_broker)

    # Then the voice note's transcript is on its message, with its own reminder
    voice = Attachment.get(Attachment.file_name == VOICE_NOTE)
    assert voice.transcription_status == "transcribed"
    assert voice.transcript_engine == "offline"
    for word in KEY_WORDS:
        assert word in voice.transcript.lower()
    assert Message.get_by_id(voice.message_id).body == voice.transcript
    reminders = reminders_of(voice.message_id)
    assert len(reminders) == 1
    assert "confirm the order" in reminders[0].text.lower()
    assert [run.status for run in runs("audio_received")] == ["succeeded"]
