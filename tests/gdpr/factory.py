"""Build an account with rows in every table, files and Redis keys.

:func:`fill_account` walks :data:`~wallie.db.models.MODELS` and fails when
it meets a table it has no filler for, so a new model makes the GDPR tests
fail until someone decides how it is filled and deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis

from wallie.db.models import (
    MODELS,
    Attachment,
    AuditLog,
    Backfill,
    Contact,
    ContactHandle,
    Conversation,
    ConversationParticipant,
    DeletionRequest,
    Entity,
    Import,
    JobRun,
    KnowledgeDocument,
    LeadScore,
    LimitOverride,
    LocalRun,
    Mailbox,
    Message,
    Notification,
    OutboxItem,
    Reminder,
    ScheduleTick,
    SyncState,
    UsageRecord,
    User,
)
from wallie.gdpr import user_media_dir
from wallie.knowledge.uploads import stage_upload
from wallie.notify import MailContent, add_email, deliver
from wallie.notify.transports import eml_file_name
from wallie.settings import Settings
from wallie.whatsapp.importer import chunk_folder, file_digest

BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Account:
    """What :func:`fill_account` made for one user."""

    user: User
    tag: str
    phone: str
    rows: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    redis_keys: list[str] = field(default_factory=list)

    @property
    def personal_values(self) -> list[str]:
        """Values that must not survive the account's deletion anywhere."""
        return [self.user.email, self.user.name, self.phone, f"client-{self.tag}@example.org"]


Filler = Callable[[Account, Settings], None]


def _user(account: Account, settings: Settings) -> None:
    """The user row exists before the walk starts."""


def _contact(account: Account, settings: Settings) -> None:
    user = account.user
    account.rows["client"] = Contact.create(
        user=user, name=f"Client {account.tag}", phone=account.phone, email=f"client-{account.tag}@example.org"
    )
    account.rows["me"] = Contact.create(user=user, name=user.name, is_self=True)


def _contact_handle(account: Account, settings: Settings) -> None:
    client = account.rows["client"]
    ContactHandle.create(user=account.user, contact=client, kind="phone", value=account.phone)
    ContactHandle.create(user=account.user, contact=client, kind="email", value=client.email)


def _import(account: Account, settings: Settings) -> None:
    """An import with its staged upload and a chunk file, and the upload of a failed import."""
    source = settings.home / f"chat-{account.tag}.txt"
    source.write_text(f"02/03/2026, 09:00 - Client {account.tag}: Call me on {account.phone}\n")
    sha256, size = file_digest(source)
    staged = settings.home / stage_upload(settings, source, account.user.id)
    account.rows["import"] = Import.create(
        user=account.user, kind="whatsapp", source_name=source.name, sha256=sha256, size_bytes=size
    )
    chunk = chunk_folder(settings, account.rows["import"].id) / "chunk-1.json"
    chunk.parent.mkdir(parents=True)
    chunk.write_text(f'[["m1", "2026-03-02T09:00:00", "Client {account.tag}", "{account.phone}"]]')
    source.write_text("not a chat export")
    failed = settings.home / stage_upload(settings, source, account.user.id)
    source.unlink()
    account.rows["upload"] = staged
    account.rows["failed_upload"] = failed
    account.files += [str(staged), str(chunk), str(failed)]


def _conversation(account: Account, settings: Settings) -> None:
    account.rows["conversation"] = Conversation.create(
        user=account.user, channel="whatsapp", external_id=f"chat-{account.tag}",
        title=f"Client {account.tag}", contact=account.rows["client"], last_message_at=BASE,
    )


def _participant(account: Account, settings: Settings) -> None:
    for contact in (account.rows["client"], account.rows["me"]):
        ConversationParticipant.create(user=account.user, conversation=account.rows["conversation"], contact=contact)


def _message(account: Account, settings: Settings) -> None:
    account.rows["message"] = Message.create(
        user=account.user, channel="whatsapp", external_id=f"m-{account.tag}-1",
        conversation=account.rows["conversation"], sender=account.rows["client"],
        source_import=account.rows["import"], direction="inbound", sent_at=BASE,
        body=f"Call me on {account.phone}",
    )


def _attachment(account: Account, settings: Settings) -> None:
    relative = f"users/{account.user.id}/photo-{account.tag}.jpg"
    path = settings.media_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 photo")
    extra = user_media_dir(settings, account.user.id) / "unreferenced.ogg"
    extra.write_bytes(b"OggS voice")
    account.files += [str(path), str(extra)]
    Attachment.create(user=account.user, message=account.rows["message"], kind="image", path=relative, size_bytes=8)


def _knowledge_document(account: Account, settings: Settings) -> None:
    KnowledgeDocument.create(user=account.user, source_import=account.rows["import"], title="Price list", text="...")


def _reminder(account: Account, settings: Settings) -> None:
    Reminder.create(
        user=account.user, key=f"reminder-{account.tag}", contact=account.rows["client"],
        conversation=account.rows["conversation"], source_message=account.rows["message"],
        text="Send the quote", due_at=BASE + timedelta(days=2),
    )


def _entity(account: Account, settings: Settings) -> None:
    Entity.create(user=account.user, message=account.rows["message"], contact=account.rows["client"], kind="phone", value=account.phone)


def _lead_score(account: Account, settings: Settings) -> None:
    LeadScore.create(user=account.user, contact=account.rows["client"], conversation=account.rows["conversation"], score=80)


def _outbox_item(account: Account, settings: Settings) -> None:
    content = MailContent(subject="Your summary", text=f"Hello {account.user.name}")
    item = add_email(account.user, f"summary:{account.tag}", account.user.email, content)
    deliver(item.id, settings)
    # A mail to the user written by an item that is not linked to the user.
    orphan = add_email(None, f"orphan:{account.tag}", account.user.email, content)
    deliver(orphan.id, settings)
    OutboxItem.delete().where(OutboxItem.id == orphan.id).execute()
    account.files += [
        str(settings.outbox_dir / eml_file_name(item.idempotency_key)),
        str(settings.outbox_dir / eml_file_name(orphan.idempotency_key)),
    ]


def _notification(account: Account, settings: Settings) -> None:
    Notification.create(user=account.user, kind="hot_lead", title=f"Client {account.tag} is hot")


def _job_run(account: Account, settings: Settings) -> None:
    JobRun.create(message_id=f"run-{account.tag}", actor="daily_summary", queue="default", user_id=account.user.id, status="succeeded")


def _usage_record(account: Account, settings: Settings) -> None:
    UsageRecord.create(user=account.user, provider="openai", cost_usd=Decimal("0.01"))


def _mailbox(account: Account, settings: Settings) -> None:
    Mailbox.create(user=account.user, provider="gmail", address=account.user.email, token="encrypted")


def _sync_state(account: Account, settings: Settings) -> None:
    SyncState.create(user=account.user, provider="gmail", account=account.user.email, cursor="123")


def _limit_override(account: Account, settings: Settings) -> None:
    LimitOverride.create(user=account.user, name="openai_calls", value="10")


def _schedule_tick(account: Account, settings: Settings) -> None:
    minute = BASE + timedelta(minutes=ScheduleTick.select().count())
    ScheduleTick.create(actor="outbox_sweep", tick_at=minute)


def _local_run(account: Account, settings: Settings) -> None:
    LocalRun.create(user=account.user, job="daily_summary", period="2026-03-02")


def _deletion_request(account: Account, settings: Settings) -> None:
    DeletionRequest.create(scope="contact", user_id=account.user.id, target_id=0, status="done", finished_at=BASE)


def _backfill(account: Account, settings: Settings) -> None:
    Backfill.create(actor="daily_summary", user=account.user, filters={"user_id": account.user.id}, target_kind="user_day")


def _audit_log(account: Account, settings: Settings) -> None:
    AuditLog.create(action="limits.override", operator="ops", user_id=account.user.id, target=f"user:{account.user.id}")
    AuditLog.create(action="gdpr.receipt", operator="ops", user_id=account.user.id, target="contact:0", details={"request_id": 0})


#: How each table is filled, by table name.
FILLERS: dict[str, Filler] = {
    "user": _user,
    "contact": _contact,
    "contact_handle": _contact_handle,
    "import": _import,
    "conversation": _conversation,
    "conversation_participant": _participant,
    "message": _message,
    "attachment": _attachment,
    "knowledge_document": _knowledge_document,
    "reminder": _reminder,
    "entity": _entity,
    "lead_score": _lead_score,
    "outbox_item": _outbox_item,
    "notification": _notification,
    "job_run": _job_run,
    "usage_record": _usage_record,
    "mailbox": _mailbox,
    "sync_state": _sync_state,
    "limit_override": _limit_override,
    "schedule_tick": _schedule_tick,
    "local_run": _local_run,
    "deletion_request": _deletion_request,
    "backfill": _backfill,
    "audit_log": _audit_log,
}


def fill_account(tag: str, settings: Settings, phone: str) -> Account:
    """Create a user named after ``tag`` with at least one row in every table.

    Raises:
      AssertionError: A model has no filler in :data:`FILLERS`.
    """
    user = User.create(email=f"{tag}@example.com", name=f"Seller {tag.title()}")
    account = Account(user=user, tag=tag, phone=phone)
    for model in MODELS:
        table = model._meta.table_name
        filler = FILLERS.get(table)
        assert filler is not None, (
            f"tests/gdpr/factory.py has no filler for table {table!r}: add one, and a "
            "deletion rule in wallie.gdpr.rules if the model has no user foreign key."
        )
        filler(account, settings)

    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url)
        account.redis_keys = [
            f"wallie:debounce:sync_chat:user:{user.id}:conversation:1",
            f"wallie:limit:cap:user:{user.id}:openai_calls:2026-03-02",
        ]
        for key in account.redis_keys:
            client.set(key, "1")

        client.close()

    return account


def row_counts() -> dict[str, int]:
    """Return the number of rows of every table."""
    return {model._meta.table_name: model.select().count() for model in MODELS}
