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

from wallie.errors import NotFound
from wallie.knowledge.documents import DocumentError
from wallie.knowledge.uploads import UploadPathError, import_upload
from wallie.settings import get_settings
from wallie.whatsapp.errors import WhatsAppError
from wallie.whatsapp.importer import ImportResult, MeRequiredError, store_chunk

#: Errors that no retry can fix: the job fails at once. An
#: ``ImportInProgressError`` is not among them: the job is retried, with
#: backoff, while the import it waits for is stored.
PERMANENT_ERRORS = (
    WhatsAppError,
    MeRequiredError,
    DocumentError,
    UploadPathError,
    NotFound,
)


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
    outcome = import_upload(user_id, path, get_settings(), me=me, date_order=date_order)
    for chunk in range(1, outcome.chunks + 1):
        knowledge_batch_import.send(user_id=user_id, import_id=outcome.import_id,
                                    chunk=chunk)

    if outcome.whatsapp is not None:
        send_follow_ups(knowledge_import.broker, user_id, outcome.whatsapp)

    return {"kind": outcome.kind, "import_id": outcome.import_id,
            "chunks": outcome.chunks}


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
