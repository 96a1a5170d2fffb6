"""Transcribe a stored voice note and put its text where analysis reads it.

The ``audio_received`` actor in ``actors/audio.py`` only declares its
options and calls :func:`run_transcription`.

An attachment's ``transcription_status`` moves from ``pending`` to one final
status (:data:`FINAL_STATUSES`), and a job for an attachment that has one
does nothing, so repeated or replayed jobs change nothing.  A transcript is
written to the attachment and to its message's body in one transaction, and
the message's ``analyzed_at`` is cleared so that the next conversation
analysis reads the spoken words.

Error policy:

* A file that cannot be transcribed (empty, too large, too long, not audio,
  corrupt, outside ``WALLIE_HOME`` or gone) is marked ``failed`` with the
  reason, and the job ends without an error, because a retry cannot help.
* ``RateLimited`` raises :class:`dramatiq.Retry` with the provider's wait.
* Other transient provider errors propagate, and the actor retries them
  with backoff.
* A permanent provider error (quota, key, rejected request) switches the job
  to the offline engine when OpenAI was chosen only because a key is set.
  When OpenAI was asked for by name, the reason is stored on the attachment,
  which stays ``pending`` so that a replay can finish it, and the error
  propagates to an actor that lists it in ``throws``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from wallie.audio.engines import TranscriberPool, resolve_engine
from wallie.audio.errors import AudioFileError, RateLimited, TranscriptionError
from wallie.audio.types import Transcript, TranscriptStatus
from wallie.db.models import Attachment, Message, User
from wallie.errors import NotFound
from wallie.logging import get_logger
from wallie.middleware.run_history import note
from wallie.settings import Settings
from wallie.usage import record_usage

logger = get_logger(__name__)

#: Name of the transcription actor, in usage records.
AUDIO_ACTOR = "audio_received"

#: Status of a voice note waiting for its transcript (set by the importers).
PENDING = "pending"
#: The transcript is stored on the attachment and in its message's body.
TRANSCRIBED = "transcribed"
#: The audio has no speech, so there is no transcript.
SILENT = "silent"
#: The engine does not handle the user's language, so nothing was stored.
#: It is shorter than ``TranscriptStatus.LANGUAGE_UNSUPPORTED`` (20 characters)
#: because the ``transcription_status`` column is ``VARCHAR(16)``.
UNSUPPORTED = "unsupported"
#: The file cannot be transcribed; ``transcription_error`` gives the reason.
FAILED = "failed"

#: Statuses after which a job for the attachment does nothing.
FINAL_STATUSES = frozenset({TRANSCRIBED, SILENT, UNSUPPORTED, FAILED})

_STORED_STATUS = {
    TranscriptStatus.TRANSCRIBED: TRANSCRIBED,
    TranscriptStatus.SILENT: SILENT,
    TranscriptStatus.LANGUAGE_UNSUPPORTED: UNSUPPORTED,
}

#: Transcribers shared by the jobs of this process.
POOL = TranscriberPool()


@dataclass
class TranscriptionOutcome:
    """Result of one job for one attachment.

    Attributes:
      attachment_id: The attachment.
      conversation_id: The conversation of the attachment's message.
      status: The attachment's status after the job.
      engine: The engine that produced the transcript, or empty.
      skipped: True when the attachment already had a final status.
      needs_analysis: True when new text was added to the message, so the
        conversation must be analysed again.
    """

    attachment_id: int
    conversation_id: int
    status: str
    engine: str = ""
    skipped: bool = False
    needs_analysis: bool = False


def run_transcription(
    user_id: int, attachment_id: int, engine: str, settings: Settings
) -> TranscriptionOutcome:
    """Transcribe one stored audio attachment with the error policy above.

    Parameters:
      user_id: The owner of the attachment.
      attachment_id: The attachment.
      engine: ``auto``, ``offline`` or ``openai``; see
        :func:`wallie.audio.engines.resolve_engine`.
      settings: The settings of the process.

    Returns:
      What the job did.

    Raises:
      NotFound: The attachment is not the user's.
      dramatiq.Retry: The provider rate-limited the request; its delay is the
        provider's wait.
      TranscriptionError: A transient provider error, or a permanent one when
        the ``openai`` engine was asked for by name.
      ConfigurationError: The ``openai`` engine was asked for without a key.
    """
    row = _find_attachment(user_id, attachment_id)
    conversation_id = row.message.conversation_id
    if row.transcription_status in FINAL_STATUSES:
        logger.info(
            "Skipped attachment %s: its transcription status is already %r.",
            attachment_id,
            row.transcription_status,
        )
        return TranscriptionOutcome(
            attachment_id, conversation_id, row.transcription_status, skipped=True
        )

    path, problem = media_file(row, settings)
    if path is None:
        return _mark_failed(row, conversation_id, problem)

    name = resolve_engine(engine, settings)
    user = User.get_by_id(user_id)
    try:
        transcript = _transcribe_or_fall_back(name, engine, path, user, settings)
    except AudioFileError as error:
        return _mark_failed(row, conversation_id, str(error))
    except TranscriptionError as error:
        _keep_pending(row, str(error))
        raise

    _record_usage(user_id, transcript)
    return _store(row, conversation_id, transcript)


def media_file(row: Attachment, settings: Settings) -> tuple[Path | None, str]:
    """Return the attachment's file, or ``None`` and the reason it cannot be read.

    The stored path is relative to ``settings.media_dir``, as the importers
    write it.  A path that leads outside ``WALLIE_HOME`` (through ``..`` or a
    symbolic link) is rejected.
    """
    if not row.path:
        return None, f"Attachment {row.id} has no stored file to transcribe."

    home = settings.home.resolve()
    resolved = (settings.media_dir / row.path).resolve()
    if not resolved.is_relative_to(home):
        return (
            None,
            f"The file of attachment {row.id} is outside WALLIE_HOME, so it was "
            "not read.",
        )
    if not resolved.is_file():
        return None, (
            f"The file of attachment {row.id} ({row.path}) is not in the media folder; "
            "import the export again to restore it."
        )

    return resolved, ""


def _find_attachment(user_id: int, attachment_id: int) -> Attachment:
    row = Attachment.get_or_none(
        (Attachment.id == attachment_id) & (Attachment.user == user_id)
    )
    if row is None:
        raise NotFound(
            "attachment", attachment_id, f"It does not belong to user {user_id}."
        )

    return row


def _transcribe_or_fall_back(
    name: str, requested: str, path: Path, user: User, settings: Settings
) -> Transcript:
    """Transcribe with ``name``; after a permanent OpenAI error on ``auto``, go offline.

    The offline engine gets the user's locale as the language, so it returns
    ``LANGUAGE_UNSUPPORTED`` for users who do not speak English instead of
    guessing English words.  OpenAI gets no hint and detects the language,
    because a voice note may come from a contact who speaks another language.
    """
    try:
        with POOL.borrow(name, settings) as transcriber:
            return transcriber.transcribe(path, language=_language(name, user))
    except RateLimited as error:
        logger.info(
            "Transcription for user %s was rate-limited, so it retries in %d "
            "milliseconds.",
            user.id,
            error.retry_after_ms,
        )
        raise dramatiq.Retry(str(error), delay=error.retry_after_ms) from error
    except AudioFileError:
        raise
    except TranscriptionError as error:
        if error.transient or not _may_fall_back(name, requested, settings):
            raise

        logger.warning(
            "OpenAI rejected a transcription for user %s (%s), so the offline engine "
            "transcribes it.",
            user.id,
            type(error).__name__,
        )
        _note(
            f"Degraded: OpenAI rejected the transcription ({type(error).__name__}), "
            "so the offline engine ran."
        )

    with POOL.borrow("offline", settings) as transcriber:
        return transcriber.transcribe(path, language=_language("offline", user))


def _language(name: str, user: User) -> str | None:
    if name == "offline":
        return user.locale or None

    return None


def _may_fall_back(name: str, requested: str, settings: Settings) -> bool:
    """Return whether OpenAI was chosen only because a key is set."""
    return (
        name == "openai"
        and requested == "auto"
        and settings.transcription_engine == "auto"
    )


def _store(
    row: Attachment, conversation_id: int, transcript: Transcript
) -> TranscriptionOutcome:
    """Write the transcript to the attachment and append it to the message body."""
    status = _STORED_STATUS[transcript.status]
    text = transcript.text.strip() if status == TRANSCRIBED else ""
    database = Attachment._meta.database
    with database.atomic():
        # The status guard makes this the one job that stores this attachment's
        # text, and on SQLite the write takes the lock before the body is read.
        updated = (
            Attachment.update(
                transcription_status=status,
                transcription_error=transcript.note,
                transcript=text,
                transcript_engine=transcript.engine,
                transcript_language=transcript.language or "",
            )
            .where(
                (Attachment.id == row.id)
                & Attachment.transcription_status.not_in(FINAL_STATUSES)
            )
            .execute()
        )
        if updated and text:
            _append_to_body(row.message_id, text)

    logger.info(
        "Stored the %s transcription of attachment %s: %.1f seconds of audio, "
        "engine %s.",
        status,
        row.id,
        transcript.duration_s,
        transcript.engine,
    )
    if status != TRANSCRIBED:
        _note(f"Attachment {row.id} is {status}: {transcript.note}")

    return TranscriptionOutcome(
        row.id,
        conversation_id,
        status,
        engine=transcript.engine,
        skipped=not updated,
        needs_analysis=bool(updated and text),
    )


def _append_to_body(message_id: int, text: str) -> None:
    """Append ``text`` to the message body and mark the message for analysis."""
    query = Message.select(Message.id, Message.body).where(Message.id == message_id)
    if getattr(Message._meta.database, "for_update", False):
        query = query.for_update()

    message = query.get()
    body = text if not message.body.strip() else f"{message.body}\n\n{text}"
    Message.update(body=body, analyzed_at=None).where(
        Message.id == message_id
    ).execute()


def _mark_failed(
    row: Attachment, conversation_id: int, reason: str
) -> TranscriptionOutcome:
    Attachment.update(transcription_status=FAILED, transcription_error=reason).where(
        (Attachment.id == row.id)
        & Attachment.transcription_status.not_in(FINAL_STATUSES)
    ).execute()
    logger.warning("Attachment %s cannot be transcribed: %s", row.id, reason)
    _note(f"Attachment {row.id} failed: {reason}")
    return TranscriptionOutcome(row.id, conversation_id, FAILED)


def _keep_pending(row: Attachment, reason: str) -> None:
    """Store the last error on an attachment that stays pending for a retry."""
    Attachment.update(transcription_error=reason).where(
        (Attachment.id == row.id)
        & Attachment.transcription_status.not_in(FINAL_STATUSES)
    ).execute()


def _record_usage(user_id: int, transcript: Transcript) -> None:
    usage = transcript.usage
    if transcript.engine == "offline" or usage.requests == 0:
        return

    message: Any = CurrentMessage.get_current_message()
    record_usage(
        user_id=user_id,
        provider=transcript.engine,
        actor=AUDIO_ACTOR,
        operation="transcribe",
        message_id=message.message_id if message is not None else "",
        calls=usage.requests,
        audio_seconds=math.ceil(usage.seconds_billed),
        cost_usd=usage.cost_usd,
    )


def _note(reason: str) -> None:
    """Add ``reason`` to the run history of the current message, if any."""
    message: Any = CurrentMessage.get_current_message()
    if message is None:
        return

    earlier = message.options.get("wallie_note")
    note(message, f"{earlier} {reason}" if earlier else reason)
