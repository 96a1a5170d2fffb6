"""Import a file that the user imported before: reuse its chat or replace it.

An export is recognized by the SHA-256 of its bytes, stored on the
``Import`` row, so a renamed copy is the same file. What happens depends on
how the earlier import read it:

- With the same date order and the same participant as the user, the new
  import stores its messages into the earlier import's conversation. Each
  message's external id is the conversation id and the parser's key, so
  every one matches a stored message and is skipped: the import stores
  nothing and counts every message as a duplicate, whatever the file is
  called. This reuses the ordinary write path rather than skipping the
  import outright. So the counts still come from the database, a batch
  import split into chunks behaves the same, and the messages that an
  earlier import did not store before it failed are added.
- With another date order or another participant as the user, the earlier
  import read the file wrongly. Its messages, with their attachments (and
  media files), reminders and entities, are deleted before the new ones are
  stored, and its row is marked ``replaced``. Contacts stay. When the user
  was another participant, the two contacts swap their roles (see
  :func:`replace_imports`).
- With another reading while an import of the file is still being stored,
  the new import is rejected with :class:`ImportInProgressError` until that
  import ends. An import still in progress long after it last moved was
  abandoned by a killed process, and is replaced like a failed one: a batch
  import ``ABANDONED_AFTER`` its start, an import stored in one job
  ``STALLED_AFTER`` its last recorded progress.
"""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wallie.db.models import Attachment, Contact, Conversation, Import, LeadScore, Message
from wallie.db.fields import utcnow
from wallie.errors import WallieError
from wallie.logging import get_logger
from wallie.settings import Settings

logger = get_logger(__name__)

#: Statuses of an import that no job works on any more.
FINISHED = ("done", "partial")

#: Statuses of an import whose messages a new reading of the file replaces.
REPLACEABLE = (*FINISHED, "failed")

#: Status of an import whose messages a later import of the file replaced.
REPLACED = "replaced"

#: Statuses of an import that is still being stored.
IN_PROGRESS = ("splitting", "running", "finishing")

#: Age after which a batch import still in progress is taken for abandoned,
#: by a process that was killed. Far longer than a batch import takes: its
#: split job may run for an hour, and each chunk job for 15 minutes with retries.
ABANDONED_AFTER = datetime.timedelta(hours=6)

#: Time without recorded progress after which an import stored in one job
#: is taken for abandoned. Such an import records its progress after each
#: batch of messages, which takes seconds.
STALLED_AFTER = datetime.timedelta(minutes=30)


class ImportInProgressError(WallieError):
    """Raised when a new reading of a file would replace an import still being stored."""

    def __init__(self, import_id: int, status: str, *, batch: bool = False) -> None:
        self.import_id = import_id
        self.status = status
        mode = " in batches" if batch else ""
        super().__init__(
            f"Import {import_id} of the same file is still being stored{mode} "
            f"(status {status}); import the file with another --me or --date-order "
            "once it has finished. Nothing was stored."
        )


class ImportReplacedError(WallieError):
    """Raised when a new reading of a file replaced an import while it was stored."""

    def __init__(self, import_id: int) -> None:
        self.import_id = import_id
        super().__init__(
            f"Import {import_id} was replaced by a new reading of the same file while "
            "it was being stored, so the messages it stored were removed. The newer "
            "import has the file's messages; nothing needs to be done."
        )


@dataclass(frozen=True, slots=True)
class EarlierImport:
    """An earlier import of the same file, as its ``Import`` row records it."""

    import_id: int
    status: str
    date_order: str
    me: str
    self_contact_id: int | None
    conversation_id: int | None
    created_at: datetime.datetime | None = None
    batch: bool = False
    progress_at: datetime.datetime | None = None

    @property
    def abandoned(self) -> bool:
        """Return True when the import is still in progress long after its last progress."""
        if self.status not in IN_PROGRESS:
            return False

        if self.batch:
            last_active, allowed = self.created_at, ABANDONED_AFTER
        else:
            last_active, allowed = self.progress_at or self.created_at, STALLED_AFTER

        return last_active is not None and last_active < utcnow() - allowed


@dataclass(slots=True)
class Reimport:
    """Plan of a new import of a file: its conversation and the imports it replaces.

    Attributes:
      conversation_id: The conversation to store into, or None for a file
        never imported before.
      same_file_as_import: The finished import that read the file the same
        way, or None.
      replace: The imports to replace, oldest first.
    """

    conversation_id: int | None = None
    same_file_as_import: int | None = None
    replace: list[EarlierImport] = field(default_factory=list)


def earlier_imports(user_id: int, sha256: str) -> list[EarlierImport]:
    """Return the user's WhatsApp imports of the file ``sha256``, oldest first."""
    rows = (
        Import.select()
        .where(
            (Import.user == user_id)
            & (Import.kind == "whatsapp")
            & (Import.sha256 == sha256)
        )
        .order_by(Import.id)
    )
    return [_earlier(row) for row in rows]


def _earlier(row: Import) -> EarlierImport:
    """Return what an ``Import`` row of a WhatsApp import records."""
    plan = row.stats.get("plan") or {}
    progress_at = (row.stats.get("progress") or {}).get("updated_at")
    return EarlierImport(
        import_id=row.id,
        status=row.status,
        date_order=row.stats.get("date_order", ""),
        me=row.stats.get("me", ""),
        self_contact_id=plan.get("self_contact_id"),
        conversation_id=plan.get("conversation_id"),
        created_at=row.created_at,
        batch=row.status in ("splitting", "finishing") or "chunks_total" in row.stats,
        progress_at=datetime.datetime.fromisoformat(progress_at) if progress_at else None,
    )


def plan_reimport(
    user_id: int, sha256: str, date_order: str, self_contact_id: int
) -> Reimport:
    """Decide which conversation a new import of the file uses and what it replaces.

    Parameters:
      user_id: The owner.
      sha256: The file's digest.
      date_order: The date order the new import reads the file in.
      self_contact_id: The contact of the participant who is the user.

    Raises:
      ImportInProgressError: When the new import reads the file differently
        from an import of it that is still being stored. Replacing that
        import now would delete its messages while it still adds more.
    """
    decision = Reimport()
    for earlier in earlier_imports(user_id, sha256):
        if earlier.conversation_id is not None and Conversation.get_or_none(
            Conversation.id == earlier.conversation_id
        ):
            decision.conversation_id = earlier.conversation_id

        same_reading = (
            earlier.date_order == date_order
            and earlier.self_contact_id == self_contact_id
        )
        if same_reading and earlier.status in FINISHED:
            decision.same_file_as_import = earlier.import_id
        elif same_reading:
            continue
        elif earlier.status in REPLACEABLE or earlier.abandoned:
            decision.replace.append(earlier)
        elif earlier.status in IN_PROGRESS:
            raise ImportInProgressError(earlier.import_id, earlier.status,
                                        batch=earlier.batch)

    return decision


def replace_imports(
    settings: Settings,
    user_id: int,
    import_id: int,
    earlier: list[EarlierImport],
    conversation_id: int,
    self_contact_id: int,
) -> list[dict[str, Any]]:
    """Delete the messages of each ``earlier`` import and mark it replaced.

    When an earlier import took another participant as the user, that
    participant's contact stops being the user's own (unless another import
    still takes it so), and the lead scores that the chat gave the contact
    who is now the user are deleted: the user is never scored.

    Returns:
      One entry per replaced import: its id, date order, participant who
      was the user, and the rows and files deleted.
    """
    replaced = []
    for old in earlier:
        deleted = delete_import_messages(
            settings, user_id, old.import_id, conversation_id
        )
        with Import._meta.database.atomic():
            row = Import.get_by_id(old.import_id)
            stats = {**row.stats, "replaced_by": import_id}
            Import.update(status=REPLACED, stats=stats).where(
                Import.id == old.import_id
            ).execute()
            if old.self_contact_id not in (None, self_contact_id):
                _hand_over_self(user_id, import_id, old.self_contact_id, self_contact_id,
                                conversation_id)

        logger.info(
            "Import %s replaced import %s, which read the dates in %s order with "
            "contact %s as the user, and deleted %d messages, %d attachments, "
            "%d reminders and %d entities.",
            import_id, old.import_id, old.date_order, old.self_contact_id,
            deleted.get("message", 0), deleted.get("attachment", 0),
            deleted.get("reminder", 0), deleted.get("entity", 0),
        )
        replaced.append({
            "import_id": old.import_id,
            "date_order": old.date_order,
            "me": old.me,
            "deleted": deleted,
        })

    return replaced


def _hand_over_self(
    user_id: int,
    import_id: int,
    old_self: int,
    new_self: int,
    conversation_id: int,
) -> None:
    """Make ``new_self`` the user's contact in place of ``old_self`` for a chat.

    ``old_self`` stays the user's own contact while another import that is
    not replaced takes it as the user.
    """
    others = Import.select().where(
        (Import.user == user_id) & (Import.kind == "whatsapp") & (Import.id != import_id)
        & (Import.status != REPLACED)
    )
    still_self = any(_earlier(row).self_contact_id == old_self for row in others)
    if not still_self:
        Contact.update(is_self=False).where(
            (Contact.id == old_self) & (Contact.user == user_id)
        ).execute()
    scores = LeadScore.delete().where(
        (LeadScore.user == user_id)
        & (LeadScore.contact == new_self)
        & (LeadScore.conversation == conversation_id)
    ).execute()
    logger.info(
        "Contact %s is the user in conversation %s instead of contact %s%s. "
        "Deleted %d lead scores of contact %s.",
        new_self, conversation_id, old_self,
        "" if still_self else ", which is no longer the user's own", scores, new_self,
    )


def delete_import_messages(
    settings: Settings, user_id: int, import_id: int, keep_conversation: int
) -> dict[str, int]:
    """Delete the messages an import stored and every row that cascades from them.

    Attachments, reminders and entities of those messages go with them, in
    one transaction, and then the attachments' media files. Conversations
    left without a message are deleted too, except ``keep_conversation``.
    The ``Import`` row and the contacts stay.

    Returns:
      Rows deleted per table name, and ``media_files`` removed.
    """
    # Imported here because wallie.gdpr imports the upload helpers, which
    # import the WhatsApp importer and so this module.
    from wallie.gdpr.external import remove_media_files
    from wallie.gdpr.plan import (
        cascade_steps,
        conversation_steps,
        empty_conversations,
        import_conversations,
    )

    conversations = import_conversations(user_id, import_id)
    roots = {Message: (Message.user == user_id) & (Message.source_import == import_id)}
    steps = cascade_steps(roots, user_id)
    deleted: dict[str, int] = {}
    paths: list[str] = []
    with Message._meta.database.atomic():
        for step in steps:
            if step.model is Attachment:
                query = Attachment.select(Attachment.path).where(step.condition)
                paths.extend(row[0] for row in query.tuples())
            rows = step.model.delete().where(step.condition).execute()
            _count(deleted, step.table, rows)

        others = [c for c in conversations if c != keep_conversation]
        empty = empty_conversations(others)
        if empty:
            for step in conversation_steps(user_id, empty):
                _count(deleted, step.table,
                       step.model.delete().where(step.condition).execute())

    # The files go after the rows are committed: a crash in between leaves
    # files that no row names, never rows that name missing files.
    deleted["media_files"] = remove_media_files(settings, paths)
    _remove_empty_folder(settings.media_dir / str(user_id) / str(import_id))
    return deleted


def _count(deleted: dict[str, int], table: str, rows: int) -> None:
    if rows:
        deleted[table] = deleted.get(table, 0) + rows


def _remove_empty_folder(folder: Path) -> None:
    """Remove the import's media folder when nothing is left in it."""
    with contextlib.suppress(OSError):
        folder.rmdir()
