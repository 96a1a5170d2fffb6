"""Peewee models of Wallie's storage.

Every model that holds personal data has a ``user`` foreign key, so GDPR
export and deletion are queries by user.  Messages are unique by
``(user, channel, external_id)`` and outbox items by ``idempotency_key``,
which is what makes imports, syncs and side effects safe to retry.

Times are :class:`~wallie.db.fields.UTCDateTimeField`: aware UTC in Python,
naive UTC in the database.  The schema itself is created and changed only
by the migrations in :mod:`wallie.db.migrations`; a test checks that the
migrated schema matches these classes.
"""

from __future__ import annotations

from typing import Any

import peewee

from .fields import JSONField, UTCDateTimeField, utcnow

#: The database every model is bound to; :func:`wallie.db.connect` fills it.
database_proxy = peewee.DatabaseProxy()

#: Channels a conversation or message can come from.
CHANNELS = ("whatsapp", "gmail", "outlook", "linkedin", "document")


class BaseModel(peewee.Model):
    """Base for every Wallie model: one database, snake_case table names."""

    class Meta:
        database = database_proxy
        legacy_table_names = False


class User(BaseModel):
    """A salesperson using Wallie."""

    email = peewee.CharField(max_length=320, unique=True)
    name = peewee.CharField(max_length=200, default="")
    time_zone = peewee.CharField(max_length=64, default="UTC")
    locale = peewee.CharField(max_length=35, default="en")
    plan = peewee.CharField(max_length=32, default="free")
    paid_work_paused_until = UTCDateTimeField(null=True)
    pause_reason = peewee.CharField(max_length=300, default="")
    created_at = UTCDateTimeField(default=utcnow)


class Contact(BaseModel):
    """A person or company the user talks to.

    ``is_self`` marks the contact that stands for the user in their own
    conversations (the ``--me`` participant of a WhatsApp import).
    """

    user = peewee.ForeignKeyField(User, backref="contacts", on_delete="CASCADE")
    name = peewee.CharField(max_length=300, default="")
    company = peewee.CharField(max_length=300, default="")
    phone = peewee.CharField(max_length=32, null=True, index=True)
    email = peewee.CharField(max_length=320, null=True, index=True)
    is_self = peewee.BooleanField(default=False)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)


class ContactHandle(BaseModel):
    """One way to reach a contact: a phone number in E.164, an email or a name.

    A contact can have several handles; each handle belongs to at most one
    contact of a user, which is how imports and syncs find existing contacts.
    """

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    contact = peewee.ForeignKeyField(Contact, backref="handles", on_delete="CASCADE")
    kind = peewee.CharField(max_length=16)
    value = peewee.CharField(max_length=320)

    class Meta:
        indexes = ((("user", "kind", "value"), True),)


class Import(BaseModel):
    """One imported file: a WhatsApp export, a document or a contact list."""

    user = peewee.ForeignKeyField(User, backref="imports", on_delete="CASCADE")
    kind = peewee.CharField(max_length=32)
    source_name = peewee.CharField(max_length=500, default="")
    sha256 = peewee.CharField(max_length=64, default="")
    status = peewee.CharField(max_length=16, default="pending")
    size_bytes = peewee.BigIntegerField(default=0)
    processed_bytes = peewee.BigIntegerField(default=0)
    stats = JSONField(default=dict)
    error = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    finished_at = UTCDateTimeField(null=True)


class Conversation(BaseModel):
    """A chat or mail thread, unique by ``(user, channel, external_id)``."""

    user = peewee.ForeignKeyField(User, backref="conversations", on_delete="CASCADE")
    channel = peewee.CharField(max_length=16)
    external_id = peewee.CharField(max_length=500)
    title = peewee.CharField(max_length=500, default="")
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    is_group = peewee.BooleanField(default=False)
    created_at = UTCDateTimeField(default=utcnow)
    last_message_at = UTCDateTimeField(null=True)
    analyzed_until = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("user", "channel", "external_id"), True),)


class ConversationParticipant(BaseModel):
    """A contact taking part in a conversation."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    conversation = peewee.ForeignKeyField(
        Conversation, backref="participants", on_delete="CASCADE"
    )
    contact = peewee.ForeignKeyField(Contact, on_delete="CASCADE")

    class Meta:
        indexes = ((("conversation", "contact"), True),)


class Message(BaseModel):
    """One message of a conversation, unique by ``(user, channel, external_id)``.

    ``direction`` is ``inbound`` (from a contact), ``outbound`` (from the
    user) or ``system`` (a group event or notice, never from a contact).
    """

    id = peewee.BigAutoField()

    user = peewee.ForeignKeyField(User, backref="messages", on_delete="CASCADE")
    channel = peewee.CharField(max_length=16)
    external_id = peewee.CharField(max_length=500)
    conversation = peewee.ForeignKeyField(
        Conversation, backref="messages", on_delete="CASCADE"
    )
    sender = peewee.ForeignKeyField(Contact, null=True, on_delete="SET NULL")
    source_import = peewee.ForeignKeyField(Import, null=True, on_delete="SET NULL")
    direction = peewee.CharField(max_length=8)
    sent_at = UTCDateTimeField(index=True)
    subject = peewee.CharField(max_length=1000, default="")
    body = peewee.TextField(default="")
    is_deleted = peewee.BooleanField(default=False)
    is_edited = peewee.BooleanField(default=False)
    labels = JSONField(default=list)
    analyzed_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("user", "channel", "external_id"), True),
            (("conversation", "sent_at"), False),
        )


class Attachment(BaseModel):
    """A file attached to a message: media of an export, a mail attachment.

    ``path`` is relative to the media folder and empty when the export did
    not include the file.  Voice notes carry a transcription status and,
    once transcribed, the transcript with the engine and language used.
    """

    id = peewee.BigAutoField()

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    message = peewee.ForeignKeyField(Message, backref="attachments", on_delete="CASCADE")
    kind = peewee.CharField(max_length=16)
    file_name = peewee.CharField(max_length=500, default="")
    content_type = peewee.CharField(max_length=200, default="")
    size_bytes = peewee.BigIntegerField(default=0)
    path = peewee.CharField(max_length=1000, default="")
    transcription_status = peewee.CharField(max_length=16, default="")
    transcription_error = peewee.TextField(default="")
    transcript = peewee.TextField(default="")
    transcript_engine = peewee.CharField(max_length=32, default="")
    transcript_language = peewee.CharField(max_length=16, default="")
    created_at = UTCDateTimeField(default=utcnow)


class KnowledgeDocument(BaseModel):
    """Text extracted from an imported document (PDF, DOCX, Markdown, ...)."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    source_import = peewee.ForeignKeyField(Import, null=True, on_delete="CASCADE")
    title = peewee.CharField(max_length=500, default="")
    content_type = peewee.CharField(max_length=200, default="")
    text = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=utcnow)


class Reminder(BaseModel):
    """Something the user or a contact promised to do, due at a time.

    ``key`` makes reminders idempotent: analysing the same message twice
    finds the reminder it already made.
    """

    user = peewee.ForeignKeyField(User, backref="reminders", on_delete="CASCADE")
    key = peewee.CharField(max_length=200, unique=True)
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="CASCADE")
    conversation = peewee.ForeignKeyField(Conversation, null=True, on_delete="CASCADE")
    source_message = peewee.ForeignKeyField(Message, null=True, on_delete="CASCADE")
    text = peewee.TextField()
    #: Who has to act: ``"user"`` or ``"contact"``.
    promised_by = peewee.CharField(max_length=8, default="user")
    due_at = UTCDateTimeField(index=True)
    status = peewee.CharField(max_length=16, default="open")
    snoozed_until = UTCDateTimeField(null=True)
    notified_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)


class Entity(BaseModel):
    """A fact found in a message: an amount, an email, a phone number, a date."""

    id = peewee.BigAutoField()

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    message = peewee.ForeignKeyField(Message, backref="entities", on_delete="CASCADE")
    contact = peewee.ForeignKeyField(Contact, null=True, on_delete="CASCADE")
    kind = peewee.CharField(max_length=32)
    value = peewee.TextField()
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("message", "kind", "value"), True),)


class LeadScore(BaseModel):
    """One scoring of a contact, 0 to 100, with the reasons behind it.

    Rows are never updated: the newest row is the current score and the
    older ones are its history.
    """

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    contact = peewee.ForeignKeyField(Contact, backref="scores", on_delete="CASCADE")
    conversation = peewee.ForeignKeyField(Conversation, null=True, on_delete="CASCADE")
    score = peewee.SmallIntegerField()
    reasons = JSONField(default=list)
    computed_at = UTCDateTimeField(default=utcnow, index=True)


class OutboxItem(BaseModel):
    """A side effect to perform once: a mail, an in-app notification, a webhook.

    ``idempotency_key`` is unique, so a retried job that writes the same item
    again finds the first one instead of sending twice.
    """

    user = peewee.ForeignKeyField(User, null=True, on_delete="CASCADE")
    idempotency_key = peewee.CharField(max_length=300, unique=True)
    kind = peewee.CharField(max_length=16)
    recipient = peewee.CharField(max_length=1000, default="")
    subject = peewee.CharField(max_length=1000, default="")
    payload = JSONField(default=dict)
    status = peewee.CharField(max_length=16, default="pending", index=True)
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    sent_at = UTCDateTimeField(null=True)


class Notification(BaseModel):
    """An in-app notification shown to the user."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    kind = peewee.CharField(max_length=32)
    title = peewee.CharField(max_length=500)
    body = peewee.TextField(default="")
    data = JSONField(default=dict)
    created_at = UTCDateTimeField(default=utcnow)
    read_at = UTCDateTimeField(null=True)


class JobRun(BaseModel):
    """One attempt at processing one message, written by run history.

    ``args`` and ``kwargs`` have secrets removed.  ``replay_of`` holds the
    message id of the run a replay was made from.  ``user_id`` is a plain
    column, not a foreign key, because a run may be recorded after its user
    was deleted; account deletion removes the user's runs by this column.
    """

    id = peewee.BigAutoField()

    message_id = peewee.CharField(max_length=64, index=True)
    attempt = peewee.IntegerField(default=0)
    actor = peewee.CharField(max_length=100, index=True)
    queue = peewee.CharField(max_length=100)
    user_id = peewee.IntegerField(null=True, index=True)
    args = JSONField(default=list)
    kwargs = JSONField(default=dict)
    options = JSONField(default=dict)
    status = peewee.CharField(max_length=16, index=True)
    reason = peewee.TextField(default="")
    error_type = peewee.CharField(max_length=200, default="")
    error = peewee.TextField(default="")
    replay_of = peewee.CharField(max_length=64, null=True, index=True)
    enqueued_at = UTCDateTimeField(null=True)
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True, index=True)
    duration_ms = peewee.IntegerField(null=True)

    class Meta:
        indexes = ((("message_id", "attempt"), True),)


class UsageRecord(BaseModel):
    """One call to a paid or rate-limited provider, with tokens and cost."""

    id = peewee.BigAutoField()

    user = peewee.ForeignKeyField(User, null=True, on_delete="CASCADE")
    provider = peewee.CharField(max_length=32)
    actor = peewee.CharField(max_length=100, default="")
    operation = peewee.CharField(max_length=64, default="")
    message_id = peewee.CharField(max_length=64, default="")
    calls = peewee.IntegerField(default=1)
    tokens_in = peewee.IntegerField(default=0)
    tokens_out = peewee.IntegerField(default=0)
    audio_seconds = peewee.IntegerField(default=0)
    cost_usd = peewee.DecimalField(max_digits=14, decimal_places=6, default=0)
    created_at = UTCDateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("user", "created_at"), False),)


class Mailbox(BaseModel):
    """A Gmail or Outlook mailbox the user connected, with its OAuth token.

    ``token`` is the token JSON encrypted with
    :class:`~wallie.mail.tokens.TokenCipher`, never plain text.  ``state`` is
    ``active`` (synced), ``needs_reconnect`` (the grant is gone, so syncs skip
    it until the user connects it again) or ``paused`` (skipped by choice).
    Sync cursors live in :class:`SyncState` under the same address.
    """

    user = peewee.ForeignKeyField(User, backref="mailboxes", on_delete="CASCADE")
    provider = peewee.CharField(max_length=16)
    address = peewee.CharField(max_length=320)
    token = peewee.TextField()
    state = peewee.CharField(max_length=16, default="active", index=True)
    last_sync_at = UTCDateTimeField(null=True)
    last_error = peewee.TextField(default="")
    reconnect_notified_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "provider", "address"), True),)


class SyncState(BaseModel):
    """The position where the last sync of one account stopped: a history id or a delta link."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    provider = peewee.CharField(max_length=32)
    account = peewee.CharField(max_length=320)
    cursor = peewee.TextField(default="")
    status = peewee.CharField(max_length=32, default="idle")
    error = peewee.TextField(default="")
    last_synced_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("user", "provider", "account"), True),)


class LimitOverride(BaseModel):
    """An operator's change to a usage cap or ceiling, for one user or one plan.

    Exactly one of ``user`` and ``plan`` is set.  ``value`` is text so caps
    (whole numbers) and ceilings (dollars with cents) share the table.
    """

    user = peewee.ForeignKeyField(User, null=True, on_delete="CASCADE")
    plan = peewee.CharField(max_length=32, null=True)
    name = peewee.CharField(max_length=64)
    value = peewee.CharField(max_length=64)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "plan", "name"), True),)


class ScheduleTick(BaseModel):
    """One cron tick of a periodic actor, claimed by the scheduler that sent it.

    ``(actor, tick_at)`` is unique, so of several scheduler processes only
    the one whose insert succeeds sends the tick.  The newest row per actor
    is where a starting scheduler resumes, to catch up ticks it missed.
    """

    actor = peewee.CharField(max_length=100)
    tick_at = UTCDateTimeField()
    catch_up = peewee.BooleanField(default=False)
    message_id = peewee.CharField(max_length=64, default="")
    created_at = UTCDateTimeField(default=utcnow)
    sent_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("actor", "tick_at"), True),)


class LocalRun(BaseModel):
    """A per-user job claimed for one local period: a day or an ISO week.

    ``period`` is the user's local date (``2026-03-08``) or ISO week
    (``2026-W10``); ``(user, job, period)`` is unique, so a user's job is
    sent at most once per period, even when the time zone changes.
    """

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    job = peewee.CharField(max_length=64)
    period = peewee.CharField(max_length=16)
    claim = peewee.CharField(max_length=32, default="")
    time_zone = peewee.CharField(max_length=64, default="")
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "job", "period"), True),)


class DeletionRequest(BaseModel):
    """A GDPR erasure in progress or done: one account, one contact or one import.

    ``scope`` is ``user``, ``contact`` or ``import``; ``target_id`` is the
    user, contact or import id.  ``user_id`` is a plain column, not a foreign
    key, because the request must outlive the account it deletes: the
    deleted-user check of queued messages reads it.  ``counts`` holds the
    rows deleted so far per table, updated in the transaction of each batch,
    so a resumed run continues the totals.  ``plan`` holds ids computed once
    at the start (such as the conversations to remove if left empty).
    ``reference`` and ``requested_by`` never hold personal data; the request
    is checked for emails and phone numbers when it is made.
    """

    scope = peewee.CharField(max_length=16)
    user_id = peewee.IntegerField(index=True)
    target_id = peewee.IntegerField()
    reference = peewee.CharField(max_length=200, default="")
    requested_by = peewee.CharField(max_length=200, default="")
    notify_to = peewee.CharField(max_length=320, default="")
    status = peewee.CharField(max_length=16, default="pending", index=True)
    plan = JSONField(default=dict)
    counts = JSONField(default=dict)
    error = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)


class Backfill(BaseModel):
    """One run of ``wallie-cli backfill``: an actor sent once per target.

    Targets are sent in a stable order; ``cursor`` is the JSON of the last
    target sent, written after each batch, so ``--resume`` continues after
    it.  ``filters`` holds ids and dates only.  ``user`` is set when the
    backfill is for one user, so account deletion removes it.
    """

    actor = peewee.CharField(max_length=100)
    user = peewee.ForeignKeyField(User, null=True, on_delete="CASCADE")
    filters = JSONField(default=dict)
    target_kind = peewee.CharField(max_length=32)
    total = peewee.IntegerField(default=0)
    sent = peewee.IntegerField(default=0)
    cursor = peewee.TextField(default="")
    status = peewee.CharField(max_length=16, default="running", index=True)
    rate_per_s = peewee.FloatField(null=True)
    requested_by = peewee.CharField(max_length=200, default="")
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    finished_at = UTCDateTimeField(null=True)


class AuditLog(BaseModel):
    """A record of an operator action or a deletion receipt.

    ``details`` never holds personal data: ids, counts and references only.
    ``user`` is kept as a plain id so the entry outlives a deleted user.
    """

    action = peewee.CharField(max_length=64, index=True)
    operator = peewee.CharField(max_length=200, default="")
    user_id = peewee.IntegerField(null=True, index=True)
    target = peewee.CharField(max_length=200, default="")
    details = JSONField(default=dict)
    created_at = UTCDateTimeField(default=utcnow)


#: Every model, in an order where each model comes after the ones it refers to.
MODELS: tuple[type[BaseModel], ...] = (
    User,
    Contact,
    ContactHandle,
    Import,
    Conversation,
    ConversationParticipant,
    Message,
    Attachment,
    KnowledgeDocument,
    Reminder,
    Entity,
    LeadScore,
    OutboxItem,
    Notification,
    JobRun,
    UsageRecord,
    Mailbox,
    SyncState,
    LimitOverride,
    ScheduleTick,
    LocalRun,
    DeletionRequest,
    Backfill,
    AuditLog,
)


def model_by_table(table: str) -> type[BaseModel]:
    """Return the model stored in ``table``.

    Raises:
      KeyError: No model uses that table.
    """
    for model in MODELS:
        if model._meta.table_name == table:
            return model

    raise KeyError(table)


def as_dict(instance: peewee.Model) -> dict[str, Any]:
    """Return the columns of ``instance`` as a plain dictionary."""
    return dict(instance.__data__)
