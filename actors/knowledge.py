"""knowledgeImport and knowledgeBatchImport: store uploaded exports and documents.

Small uploads are stored by one job. A WhatsApp export of
``WALLIE_BATCH_IMPORT_BYTES`` or more is split into chunk files by that job,
which then sends one ``knowledge_batch_import`` per chunk, for several
workers to store in parallel. The logic lives in :mod:`wallie.knowledge`
and :mod:`wallie.whatsapp.importer`.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from wallie.errors import NotFound
from wallie.knowledge.documents import DocumentError
from wallie.knowledge.uploads import UploadPathError, import_upload
from wallie.logging import get_logger
from wallie.settings import get_settings
from wallie.whatsapp.errors import WhatsAppError
from wallie.whatsapp.importer import ImportResult, MeRequiredError, store_chunk
from wallie.whatsapp.reimport import ImportInProgressError, ImportReplacedError

#: Errors that no retry can fix: the job fails at once. An
#: ``ImportInProgressError`` is not among them: the job is retried, with
#: backoff, while the import it waits for is stored.
PERMANENT_ERRORS = (
    WhatsAppError,
    MeRequiredError,
    DocumentError,
    UploadPathError,
    NotFound,
    ImportReplacedError,
)

logger = get_logger(__name__)

#: Retries of ``knowledge_import`` that wait for another import of the same
#: file, on top of its ``max_retries``. From the sixth on, each waits 150 to
#: 300 seconds, so 200 of them last longer than ABANDONED_AFTER (6 hours).
#: Then the next retry replaces the import it waited for as abandoned.
IN_PROGRESS_RETRIES = 200

#: Message option that counts the retries spent waiting for another import.
WAITS_OPTION = "import_waits"


def send_follow_ups(broker: dramatiq.Broker, user_id: int, result: ImportResult) -> list[str]:
    """Send analysis of the imported chat and transcription of its voice notes.

    Each follow-up is sent only when its actor is declared on ``broker``.

    Returns:
      The ids of the messages sent.
    """
    declared = set(broker.get_declared_actors())
    sent = []
    stored = result.stats.get("messages", 0) + result.stats.get("system_messages", 0)
    if "conversation_analysis" in declared and stored:
        actor = broker.get_actor("conversation_analysis")
        sent.append(actor.send(user_id=user_id, conversation_id=result.conversation_id))

    if "audio_received" in declared:
        actor = broker.get_actor("audio_received")
        for attachment_id in result.voice_note_ids:
            sent.append(actor.send(user_id=user_id, attachment_id=attachment_id))

    return [message.message_id for message in sent]


@dramatiq.actor(
    queue_name="imports",
    max_retries=3,
    min_backoff=5_000,
    max_backoff=300_000,
    time_limit=3_600_000,
    throws=PERMANENT_ERRORS,
)
def knowledge_import(
    user_id: int, path: str, me: str | None = None, date_order: str | None = None
) -> dict[str, Any]:
    """Import the upload at ``path`` (a key under WALLIE_HOME) for the user.

    A large WhatsApp export is split into chunks, each sent to
    ``knowledge_batch_import``.
    """
    try:
        outcome = import_upload(user_id, path, get_settings(), me=me, date_order=date_order)
    except ImportInProgressError as error:
        _wait_without_spending_retries(user_id, error)
        raise

    for chunk in range(1, outcome.chunks + 1):
        knowledge_batch_import.send(user_id=user_id, import_id=outcome.import_id,
                                    chunk=chunk)

    if outcome.whatsapp is not None:
        send_follow_ups(knowledge_import.broker, user_id, outcome.whatsapp)

    return {"kind": outcome.kind, "import_id": outcome.import_id,
            "chunks": outcome.chunks}


def _wait_without_spending_retries(user_id: int, error: ImportInProgressError) -> None:
    """Raise the current job's retry budget by one for a retry that waits.

    The job is retried with backoff while the import it waits for is
    stored. Those retries leave its ``max_retries`` for other errors, up to
    :data:`IN_PROGRESS_RETRIES` of them.
    """
    message: Any = CurrentMessage.get_current_message()
    if message is None or get_settings().embedded:
        # In-process, the waits would hold the command for minutes, mostly
        # for an import that a killed command left in progress.
        return

    waits = message.options.get(WAITS_OPTION, 0)
    if waits >= IN_PROGRESS_RETRIES:
        logger.warning(
            "Import job %s of user %s waited %d times for import %s. Further "
            "retries count against its max_retries.",
            message.message_id, user_id, waits, error.import_id,
        )
        return

    budget = message.options.get("max_retries", knowledge_import.options["max_retries"])
    message.options["max_retries"] = budget + 1
    message.options[WAITS_OPTION] = waits + 1
    logger.info("Import job %s of user %s waits for import %s of the same file (%d of %d).",
                message.message_id, user_id, error.import_id, waits + 1, IN_PROGRESS_RETRIES)


@dramatiq.actor(
    queue_name="imports",
    max_retries=10,
    min_backoff=1_000,
    max_backoff=120_000,
    time_limit=900_000,
    throws=(NotFound,),
)
def knowledge_batch_import(user_id: int, import_id: int, chunk: int) -> bool:
    """Store chunk ``chunk`` of batch import ``import_id``; the last one finishes it.

    Returns True when this job finished the import.
    """
    result = store_chunk(get_settings(), import_id, chunk, user_id=user_id)
    if result is None:
        return False

    send_follow_ups(knowledge_batch_import.broker, user_id, result)
    return True
