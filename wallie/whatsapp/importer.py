"""Store a parsed WhatsApp export: contacts, one conversation, messages, media.

Design:

- The export is parsed once, through the parser's public API. That pass
  collects the participants, counts and time range, and spools the messages
  to a temporary file in pickled batches. Which participant is the user is
  settled before anything is stored, so a file that is not an export, or a
  chat whose ``me`` cannot be settled, leaves the database as it was.
- The messages are then read back from the spool, which is faster than
  parsing the export a second time, and memory stays flat.
- Messages are written in batches through
  :func:`wallie.storage.insert_message_values`, which ignores rows already
  stored, so importing the same file again, or a later export that overlaps
  it, adds only the new messages. A copy of a file imported before, under
  any name, goes into the same conversation, and a new reading of it
  replaces the earlier one (see :mod:`wallie.whatsapp.reimport`). A later
  export under a file name that does not name the chat goes into the chat
  that already contains its messages (:func:`_overlapping_conversation`). A batch's
  messages and attachments share one transaction, and writer threads store
  batches while the next ones are built from the spool. A message's ``external_id`` is the conversation id
  and the parser's message key: the key alone would merge two chats in which
  the user sent the same text in the same minute.
- The counts of an import are read back from the database (messages whose
  ``source_import`` is the import), so a batch retried after a crash never
  counts a message twice.
- Large files are split into chunk files of parsed messages
  (``media_dir/imports/<import_id>/chunk-N.json``) that several workers store
  in parallel; each chunk is marked done on the ``Import`` row under a row
  lock, and the worker that marks the last chunk finishes the import.

Time zones: the export shows wall-clock times of the phone, read here in the
user's time zone. A time that falls twice (the hour repeated when clocks go
back) takes its first occurrence, unless that would put the message before
the one above it while the second occurrence would not. A time that does not
exist (the hour skipped when clocks go forward) is read with the offset in
force before the change, which moves it forward by the length of the gap,
as the phone's clock did.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import mimetypes
import os
import pickle
import re
import shutil
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wallie.db.fields import utcnow
from wallie.db.models import Attachment as AttachmentRow
from wallie.db.models import (
    Contact,
    Conversation,
    ConversationParticipant,
    Import,
    Message,
    User,
)
from wallie.errors import NotFound, WallieError
from wallie.logging import get_logger
from wallie.settings import Settings
from wallie.storage import (
    add_participants,
    find_contact,
    find_or_create_contact,
    insert_message_values,
    is_sqlite,
    locked_row,
    touch_conversation,
    upsert_conversation,
)
from wallie.whatsapp import (
    Attachment,
    ParsedExport,
    ParsedMessage,
    extract_member,
    normalize_phone,
    parse_export,
)
from wallie.whatsapp.reimport import (
    IN_PROGRESS,
    REPLACED,
    ImportReplacedError,
    delete_import_messages,
    plan_reimport,
    replace_imports,
)

logger = get_logger(__name__)

#: Message keys sampled from each end of an export, to find the chat an
#: export continues. Between ``SAMPLE_KEYS`` and twice as many more are
#: sampled at even steps over the whole export.
SAMPLE_KEYS = 64

#: Sampled keys an existing chat must contain for an export under another name
#: to be imported into it.
OVERLAP_KEYS = 3

#: Query parameters per lookup of sampled keys, below SQLite's limit.
OVERLAP_PARAMETERS = 900

#: Channel name of WhatsApp conversations and messages.
CHANNEL = "whatsapp"

#: Messages stored per transaction, and per pickled batch of the spool.
BATCH_SIZE = 5_000

#: Messages per chunk file of a batch import.
CHUNK_SIZE = 5_000

#: Threads that write batches of one import into PostgreSQL at the same time.
POSTGRES_WRITERS = 2

#: Batches between two progress updates of the ``Import`` row.
PROGRESS_EVERY = 1

#: Bytes read at a time while hashing an upload (1 MiB).
HASH_BLOCK = 1 << 20

#: Regions whose phones show dates month first.
_MONTH_FIRST_REGIONS = frozenset({"US", "PH", "FM", "MH", "PW", "AS", "GU", "PR", "VI"})

#: Prefixes and suffixes WhatsApp and browsers add to export file names.
_NAME_PREFIX = re.compile(
    r"^(?:whatsapp chat (?:with|-)|conversa do whatsapp com|chat de whatsapp con|"
    r"whatsapp-chat mit|discussion whatsapp avec)\s*",
    re.IGNORECASE,
)
_NAME_SUFFIX = re.compile(r"\s*\(\d+\)$")


class MeRequiredError(WallieError):
    """Raised when the participant who is the user cannot be settled.

    Attributes:
      source: The export that was read.
      participants: The chat's participants, sorted.
      given: The ``me`` value that matched no participant, or None when none was given.
    """

    def __init__(self, source: str, participants: list[str], given: str | None) -> None:
        self.source = source
        self.participants = participants
        self.given = given
        super().__init__(self.describe("the me argument"))

    def describe(self, option: str) -> str:
        """Return the error message, telling the user to set ``option``."""
        listed = ", ".join(repr(name) for name in self.participants)
        if self.given is None:
            start = f"Cannot tell which participant of {self.source} is you"
        else:
            start = f"No participant of {self.source} is {self.given!r}"
        return f"{start}. Set {option} to one of: {listed}. Nothing was stored."


@dataclass(frozen=True, slots=True)
class Sender:
    """A chat participant as the parser shows it."""

    display: str
    phone: str | None
    label: str


@dataclass(slots=True)
class Survey:
    """Findings of the first pass over an export."""

    source: str
    total: int = 0
    system: int = 0
    media: int = 0
    first: datetime.datetime | None = None
    last: datetime.datetime | None = None
    senders: dict[tuple[str, str | None], Sender] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)
    date_order: str = ""
    date_order_source: str = ""
    unparsed_lines: int = 0
    unparsed_samples: list[dict[str, Any]] = field(default_factory=list)
    sample_keys: dict[str, tuple[str, str | None] | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """Everything a worker needs to store messages of one import.

    Attributes:
      user_id: Owner of the import.
      import_id: The ``Import`` row.
      conversation_id: The chat's conversation.
      contacts: Contact id per sender, keyed ``display\\x1fphone``.
      self_contact_id: The contact that stands for the user.
      time_zone: IANA zone the export's times are read in.
      archive: Path of the zip export, for media, or None for a text export.
      media_dir: Folder that attachment paths are relative to.
    """

    user_id: int
    import_id: int
    conversation_id: int
    contacts: dict[str, int]
    self_contact_id: int
    time_zone: str
    archive: str | None
    media_dir: str

    def to_json(self) -> dict[str, Any]:
        """Return the plan as a JSON-ready mapping."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportPlan:
        """Build a plan from :meth:`to_json` output."""
        return cls(**data)


@dataclass(slots=True)
class ImportResult:
    """Outcome of an import, with the numbers of ``import whatsapp --json``."""

    import_id: int
    conversation_id: int
    status: str
    stats: dict[str, Any]
    voice_note_ids: list[int] = field(default_factory=list)
    batched: bool = False


#: Called with messages done and messages in the export.
Progress = Callable[[int, int], None]


def sender_key(display: str, phone: str | None) -> str:
    """Return the key of a sender in :attr:`ImportPlan.contacts`."""
    return f"{display}\x1f{phone or ''}"


def file_digest(path: Path) -> tuple[str, int]:
    """Return the hex SHA-256 and the size in bytes of ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)

    return digest.hexdigest(), size


def region_of(locale: str) -> str | None:
    """Return the region of a locale such as ``pt-BR``, or None for ``en``."""
    parts = re.split(r"[-_]", locale or "")
    if len(parts) > 1 and len(parts[-1]) == 2 and parts[-1].isalpha():
        return parts[-1].upper()

    return None


def user_zone(user: User) -> ZoneInfo:
    """Return the user's time zone, UTC when the stored name is unknown."""
    try:
        return ZoneInfo(user.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("User %s has an unknown time zone; reading times as UTC.", user.id)
        return ZoneInfo("UTC")


def chat_name(path: Path) -> str:
    """Return the chat's name from an export file name.

    Examples:
      >>> chat_name(Path("WhatsApp Chat with Ana Souza (1).zip"))
      'Ana Souza'
    """
    stem = _NAME_SUFFIX.sub("", path.stem)
    return _NAME_PREFIX.sub("", stem).strip() or stem


def conversation_key(name: str, participants: Iterable[str]) -> str:
    """Return the conversation's external id: the chat name and sorted participants."""
    material = "\x1f".join([name.casefold(), *sorted(participants)])
    return "wa-" + hashlib.sha256(material.encode()).hexdigest()[:40]


class LocalClock:
    """Turn the export's naive wall-clock times into aware UTC times."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.previous: datetime.datetime | None = None
        self._cache: dict[datetime.datetime, tuple[datetime.datetime, datetime.datetime]] = {}

    def to_utc(self, naive: datetime.datetime) -> datetime.datetime:
        """Return ``naive`` read in the zone, as aware UTC; see the module notes."""
        both = self._cache.get(naive)
        if both is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            first = naive.replace(tzinfo=self.zone).astimezone(datetime.UTC)
            second = naive.replace(tzinfo=self.zone, fold=1).astimezone(datetime.UTC)
            both = self._cache[naive] = (first, second)

        first, second = both
        chosen = first
        if second > first and self.previous is not None and first < self.previous <= second:
            chosen = second
        self.previous = chosen
        return chosen


def survey(
    chat: ParsedExport, region: str | None = None, spool: BinaryIO | None = None
) -> Survey:
    """Read the export once and gather senders, counts and the time range.

    Parameters:
      chat: The opened export.
      region: Region for numbers without a country code.
      spool: File that receives the messages, pickled in batches, so the
        import reads them back instead of parsing the export a second time.

    Raises:
      NoMessagesError: When the export gives no message.
      ExportEncodingError: When its bytes do not decode.
    """
    found = Survey(source=chat.source)
    pending: list[tuple[Any, ...]] = []
    first: list[ParsedMessage] = []
    spread: list[ParsedMessage] = []
    spread_step = 1
    last: deque[ParsedMessage] = deque(maxlen=SAMPLE_KEYS)
    for message in chat.messages():
        if len(first) < SAMPLE_KEYS:
            first.append(message)
        if found.total % spread_step == 0:
            spread.append(message)
            # Dropping every other message and doubling the step keeps the
            # sample even over the whole export, however long it grows.
            if len(spread) == 2 * SAMPLE_KEYS:
                del spread[1::2]
                spread_step *= 2
        last.append(message)
        if spool is not None:
            pending.append(_pack(message))
            if len(pending) == BATCH_SIZE:
                pickle.dump(pending, spool, pickle.HIGHEST_PROTOCOL)
                pending = []
        found.total += 1
        if found.first is None or message.timestamp < found.first:
            found.first = message.timestamp
        if found.last is None or message.timestamp > found.last:
            found.last = message.timestamp
        found.media += len(message.attachments)
        if message.kind == "system":
            found.system += 1
            continue

        pair = (message.sender or "", message.sender_phone)
        if pair not in found.senders:
            found.senders[pair] = _sender(pair[0], pair[1], region)

    if spool is not None and pending:
        pickle.dump(pending, spool, pickle.HIGHEST_PROTOCOL)
    report = chat.report
    found.participants = chat.participants
    found.date_order = chat.date_order
    found.date_order_source = chat.date_order_source
    found.unparsed_lines = report.unparsed_lines
    found.unparsed_samples = [asdict(sample) for sample in report.unparsed_samples]
    found.sample_keys = {
        message.key: None if message.kind == "system"
        else (message.sender or "", message.sender_phone)
        for message in (*first, *spread, *last)
    }
    return found


def _pack(message: ParsedMessage) -> tuple[Any, ...]:
    """Return a message as a tuple, which pickles several times faster."""
    return (
        message.timestamp, message.sender, message.sender_phone, message.text,
        message.kind, message.system_event,
        tuple((a.kind, a.file_name, a.needs_transcription, a.member)
              for a in message.attachments),
        message.is_deleted, message.is_edited, message.is_location, message.key,
        message.line_number,
    )


def _unpack(item: tuple[Any, ...]) -> ParsedMessage:
    (stamp, sender, phone, text, kind, event, media, deleted, edited, location, key,
     line) = item
    return ParsedMessage(
        timestamp=stamp, sender=sender, sender_phone=phone, text=text, kind=kind,
        system_event=event, attachments=tuple(Attachment(*entry) for entry in media),
        is_deleted=deleted, is_edited=edited, is_location=location, key=key,
        line_number=line,
    )


def _sender(display: str, phone: str | None, region: str | None) -> Sender:
    number_only = phone is not None and normalize_phone(display, region) is not None
    return Sender(display, phone, phone if number_only and phone else display)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def resolve_me(
    user: User, found: Survey, me: str | None, region: str | None
) -> Sender:
    """Return the participant who is the user.

    With ``me``, the participant whose name, label or number matches it.
    Without, the participant named like the user, else the one matching a
    contact already marked as the user's own. Nothing else is guessed: a
    wrong guess would swap inbound and outbound for the whole chat.

    Raises:
      MeRequiredError: When no rule settles it, listing the participants.
    """
    senders = list(found.senders.values())
    if me is not None:
        phone = normalize_phone(me, region)
        matches = [
            sender
            for sender in senders
            if _fold(me) in (_fold(sender.display), _fold(sender.label))
            or (phone is not None and sender.phone == phone)
        ]
        if len(matches) == 1:
            return matches[0]
        raise MeRequiredError(found.source, found.participants, me)

    if user.name:
        named = [sender for sender in senders if _fold(sender.display) == _fold(user.name)]
        if len(named) == 1:
            return named[0]

    own = []
    for sender in senders:
        contact = find_contact(user, phone=sender.phone, name=sender.display)
        if contact is not None and contact.is_self:
            own.append(sender)
    if len(own) == 1:
        return own[0]

    raise MeRequiredError(found.source, found.participants, None)


@dataclass(slots=True)
class Prepared:
    """A surveyed export whose import row and contacts exist.

    Attributes:
      spool: The export's messages, pickled in batches by the survey.
      survey: What the survey found.
      plan: What storing the messages needs.
    """

    spool: BinaryIO
    survey: Survey
    plan: ImportPlan

    def messages(self) -> Iterator[ParsedMessage]:
        """Yield the spooled messages in file order."""
        for batch in self.packed_batches():
            yield from (_unpack(item) for item in batch)

    def packed_batches(self) -> Iterator[list[tuple[Any, ...]]]:
        """Yield the spooled batches of packed messages, in file order."""
        self.spool.seek(0)
        while True:
            try:
                yield pickle.load(self.spool)
            except EOFError:
                return

    def close(self) -> None:
        """Delete the spool."""
        self.spool.close()


def prepare(
    user: User,
    path: Path,
    settings: Settings,
    *,
    me: str | None = None,
    date_order: str | None = None,
    source_name: str | None = None,
    status: str = "running",
) -> Prepared:
    """Survey an export, settle ``me``, then create the import, contacts and chat.

    The export is parsed once; its messages are spooled to a temporary file
    that the caller reads and closes. Nothing is stored when this raises.

    Raises:
      WhatsAppError: When the file is not a readable export.
      MeRequiredError: When the user's participant cannot be settled.
    """
    region = region_of(user.locale)
    fallback = "mdy" if region in _MONTH_FIRST_REGIONS else "dmy"
    name = source_name or path.name
    spool = tempfile.TemporaryFile()
    try:
        with parse_export(
            path, date_order=date_order, fallback_date_order=fallback,
            default_region=region, name=name,
        ) as chat:
            found = survey(chat, region, spool)
        self_sender = resolve_me(user, found, me, region)
        sha256, size = file_digest(path)
        plan = _store_plan(user, path, settings, found, self_sender, name, sha256, size,
                           status)
    except BaseException:
        spool.close()
        raise

    return Prepared(spool, found, plan)


def _store_plan(
    user: User,
    path: Path,
    settings: Settings,
    found: Survey,
    self_sender: Sender,
    name: str,
    sha256: str,
    size: int,
    status: str,
) -> ImportPlan:
    contacts: dict[str, int] = {}
    # One transaction, so that a re-import that plan_reimport rejects leaves
    # the contacts as they were, the user's own one included. The user's row
    # is locked until the import row exists, so two imports of one file that
    # start together see each other in plan_reimport.
    with locked_row(User, user.id):
        for (display, phone), sender in found.senders.items():
            is_number = sender.label == phone
            contact = find_or_create_contact(
                user,
                name=display if not is_number else (phone or display),
                phone=phone,
                is_self=sender == self_sender,
                match_name=not is_number,
            )
            contacts[sender_key(display, phone)] = contact.id

        self_id = contacts[sender_key(self_sender.display, self_sender.phone)]
        reimport = plan_reimport(user.id, sha256, found.date_order, self_id)
        if reimport.conversation_id is not None:
            conversation = Conversation.get_by_id(reimport.conversation_id)
        else:
            conversation = _new_conversation(user, path, name, found, contacts, self_sender)
        members = [Contact.get_by_id(cid) for cid in contacts.values()]
        add_participants(conversation, members)
        stats = _base_stats(found)
        stats.update(me=self_sender.label, locale=user.locale or "",
                     same_file_as_import=reimport.same_file_as_import)
        row = Import.create(
            user=user, kind="whatsapp", source_name=name[:500], sha256=sha256,
            status=status, size_bytes=size, stats=stats,
        )

    plan = ImportPlan(
        user_id=user.id, import_id=row.id, conversation_id=conversation.id,
        contacts=contacts, self_contact_id=self_id, time_zone=str(user_zone(user)),
        archive=str(path) if _is_zip(path) else None, media_dir=str(settings.media_dir),
    )
    stats["plan"] = plan.to_json()
    try:
        replaced = replace_imports(settings, user.id, row.id, reimport.replace,
                                   conversation.id, self_id)
    except BaseException as error:
        _fail(row.id, error)
        raise

    for entry in replaced:
        remove_chunk_files(settings, entry["import_id"])

    stats["replaced"] = replaced
    stats["replaced_import"] = replaced[-1]["import_id"] if replaced else None
    Import.update(stats=stats).where(Import.id == row.id).execute()
    logger.info("Created import %s of %s for user %s.", row.id, name, user.id)
    if reimport.same_file_as_import is not None:
        logger.info("Import %s reads the same file as import %s.", row.id,
                    reimport.same_file_as_import)
    return plan


def _new_conversation(
    user: User,
    path: Path,
    name: str,
    found: Survey,
    contacts: dict[str, int],
    self_sender: Sender,
) -> Conversation:
    """Return the chat keyed by its name and participants, created if missing."""
    self_id = contacts[sender_key(self_sender.display, self_sender.phone)]
    others = [label for label in found.participants if label != self_sender.label]
    title = chat_name(path) if len(others) != 1 else others[0]
    is_group = len(found.participants) > 2
    other_ids = [cid for cid in contacts.values() if cid != self_id]
    key = conversation_key(chat_name(Path(name)), found.participants)
    known = Conversation.get_or_none(
        (Conversation.user == user) & (Conversation.channel == CHANNEL)
        & (Conversation.external_id == key)
    )
    if known is None:
        own = (self_sender.display, self_sender.phone)
        sample = {
            message_key: sender == own for message_key, sender in found.sample_keys.items()
        }
        known = _overlapping_conversation(user, other_ids, sample, is_group)
        if known is not None:
            logger.info(
                "Export %s for user %s shares messages with conversation %s, so it "
                "is imported into that conversation.", name, user.id, known.id,
            )
            return known
    return upsert_conversation(
        user, CHANNEL, key, title=title[:500], is_group=is_group,
        contact=Contact.get_by_id(other_ids[0]) if len(other_ids) == 1 else None,
    )


def _overlapping_conversation(
    user: User, other_ids: list[int], sample: dict[str, bool], is_group: bool
) -> Conversation | None:
    """Return the WhatsApp chat that already contains messages of this export, if any.

    A later export of a chat under a file name that does not name the chat
    gets another conversation key. Its messages still have the keys they
    had in the earlier export. So the chat is the conversation, among those
    with one of the export's other participants, that contains the most of
    the sampled keys. It must contain at least ``OVERLAP_KEYS`` of them
    (fewer for a tiny export), so one message that two chats happen to share
    does not join them.

    The user can forward the same messages to several chats in the same
    minute, which gives them the same keys there. So unless the export and
    the conversation are both chats with one contact, and thus the same
    chat, at least one shared key must be of a message that the user did
    not send.

    Parameters:
      user: The owner.
      other_ids: Contacts of the export's participants other than the user.
      sample: Sampled message keys, each mapped to whether the user sent it.
      is_group: Whether the export is of a group.

    NOTE: the sample covers the export at even steps of a 64th to a 128th
    of its length, besides both ends. An earlier export shorter than about
    three such steps that lies wholly inside this one can be missed, and
    its messages are then stored a second time in a new conversation.
    """
    if not other_ids or not sample:
        return None

    candidates = {
        row.id: row.is_group
        for row in Conversation.select(Conversation.id, Conversation.is_group)
        .join(ConversationParticipant)
        .where(
            (ConversationParticipant.user == user)
            & ConversationParticipant.contact.in_(other_ids)
            & (Conversation.channel == CHANNEL)
        )
        .distinct()
    }
    shared: Counter[int] = Counter()
    not_own: Counter[int] = Counter()
    for conversation_id, message_key in _stored_keys(user, list(candidates), list(sample)):
        shared[conversation_id] += 1
        if not sample[message_key]:
            not_own[conversation_id] += 1

    needed = min(OVERLAP_KEYS, len(sample))
    found = [
        (count, conversation_id)
        for conversation_id, count in shared.items()
        if count >= needed
        and (not_own[conversation_id] or not (is_group or candidates[conversation_id]))
    ]
    if not found:
        return None
    return Conversation.get_by_id(max(found)[1])


def _stored_keys(
    user: User, conversation_ids: list[int], keys: list[str]
) -> Iterator[tuple[int, str]]:
    """Yield the conversation and message key of each of ``keys`` stored in them."""
    # External ids are "<conversation id>:<message key>". A few conversations
    # per query keep the parameter list short.
    per_query = max(1, OVERLAP_PARAMETERS // len(keys))
    for start in range(0, len(conversation_ids), per_query):
        part = conversation_ids[start : start + per_query]
        ids = [f"{cid}:{key}" for cid in part for key in keys]
        query = Message.select(Message.conversation, Message.external_id).where(
            (Message.user == user) & (Message.channel == CHANNEL)
            & Message.external_id.in_(ids)
        )
        for conversation_id, external_id in query.tuples():
            yield conversation_id, external_id.partition(":")[2]


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def _base_stats(found: Survey) -> dict[str, Any]:
    return {
        "parsed_messages": found.total,
        "parsed_system_messages": found.system,
        "parsed_media": found.media,
        "participants": found.participants,
        "date_order": found.date_order,
        "date_order_source": found.date_order_source,
        "unparsed_lines": found.unparsed_lines,
        "unparsed_samples": found.unparsed_samples,
        "first_local": found.first.isoformat() if found.first else None,
        "last_local": found.last.isoformat() if found.last else None,
        "progress": {"messages_done": 0, "messages_total": found.total},
    }


#: Message fields that :func:`store_messages` writes, in the order of its rows.
_COLUMNS = (
    "user", "channel", "external_id", "conversation", "sender", "source_import",
    "direction", "sent_at", "subject", "body", "is_deleted", "is_edited", "labels",
    "created_at",
)

#: The ``labels`` column of a message with and without a shared location, as
#: the JSON text that :class:`wallie.db.fields.JSONField` stores.
_LOCATION_LABELS = json.dumps(["location"])
_NO_LABELS = json.dumps([])


@dataclass(slots=True)
class Rows:
    """A batch of messages as database values, ready for :func:`write_rows`.

    Attributes:
      values: One tuple per message, in the order of ``_COLUMNS``.
      media: The attachments of each message that has some, by external id.
      media_times: The UTC send time of each message of ``media``.
    """

    values: list[tuple[Any, ...]]
    media: dict[str, tuple[Attachment, ...]]
    media_times: dict[str, datetime.datetime]


def message_rows(
    plan: ImportPlan, packed: list[tuple[Any, ...]], clock: LocalClock
) -> Rows:
    """Turn messages packed by ``_pack`` into rows of database values.

    Working on the packed tuples spares building a :class:`ParsedMessage`
    per spooled message.
    """
    values = []
    media: dict[str, tuple[Attachment, ...]] = {}
    media_times: dict[str, datetime.datetime] = {}
    prefix = f"{plan.conversation_id}:"
    now = utcnow().replace(tzinfo=None)
    contacts = plan.contacts
    for (stamp, name, phone, text, kind, _event, files, deleted, edited, location, key,
         _line) in packed:
        external_id = prefix + key
        if kind == "system":
            sender, direction = None, "system"
        else:
            sender = contacts[sender_key(name or "", phone)]
            direction = "outbound" if sender == plan.self_contact_id else "inbound"
        sent_at = clock.to_utc(stamp)
        values.append((
            plan.user_id, CHANNEL, external_id, plan.conversation_id, sender,
            plan.import_id, direction, sent_at.replace(tzinfo=None), "", text, deleted,
            edited, _LOCATION_LABELS if location else _NO_LABELS, now,
        ))
        if files:
            media[external_id] = tuple(Attachment(*entry) for entry in files)
            media_times[external_id] = sent_at

    return Rows(values, media, media_times)


def write_rows(plan: ImportPlan, rows: Rows) -> int:
    """Store a batch of rows and their attachments; return how many messages were new.

    The messages and their attachments are written in one transaction, so a
    batch retried after a crash finds either both or neither. Safe to
    repeat: messages already stored are skipped, and attachments are added
    only to this import's messages that have none yet.
    """
    with Message._meta.database.atomic():
        inserted, ids = insert_message_values(_COLUMNS, rows.values, ids_for=rows.media)
        attachments = [
            _attachment_row(plan, message_id, attachment)
            for external_id, message_id in ids.items()
            for attachment in rows.media[external_id]
        ]
        if attachments:
            AttachmentRow.insert_many(attachments).execute()

    stored_before = {
        external_id: files
        for external_id, files in rows.media.items()
        if external_id not in ids
    }
    if stored_before:
        times = [rows.media_times[external_id] for external_id in stored_before]
        _store_attachments(plan, stored_before, min(times), max(times))
    return inserted


def store_messages(
    plan: ImportPlan, messages: list[ParsedMessage], clock: LocalClock
) -> int:
    """Store one batch of messages and their attachments; return how many were new.

    See :func:`write_rows` for what makes it safe to repeat.
    """
    packed = [_pack(message) for message in messages]
    return write_rows(plan, message_rows(plan, packed, clock))


def _store_attachments(
    plan: ImportPlan,
    with_media: dict[str, tuple[Attachment, ...]],
    earliest: datetime.datetime,
    latest: datetime.datetime,
) -> None:
    """Add attachment rows to this import's stored messages that lack them.

    Only messages that were already stored go through here. Those of an
    earlier import keep their own attachments, so only this import's
    messages whose attachment rows are missing gain them.
    """
    # The time range lets PostgreSQL use the (conversation, sent_at) index.
    # Right after a bulk insert its statistics are stale, and with only the
    # external ids it filtered every message of the user or the import.
    stored = (
        Message.select(Message.id, Message.external_id, Message.source_import)
        .where(
            (Message.conversation == plan.conversation_id)
            & (Message.sent_at >= earliest)
            & (Message.sent_at <= latest)
            & (Message.external_id.in_(list(with_media)))
        )
    )
    ids = {
        row.external_id: row.id
        for row in stored
        if row.source_import_id == plan.import_id
    }
    if not ids:
        return

    done = {
        row.message_id
        for row in AttachmentRow.select(AttachmentRow.message).where(
            AttachmentRow.message.in_(list(ids.values()))
        )
    }
    rows = []
    for external_id, message_id in ids.items():
        if message_id in done:
            continue
        for attachment in with_media[external_id]:
            rows.append(_attachment_row(plan, message_id, attachment))

    if rows:
        AttachmentRow.insert_many(rows).execute()


def _attachment_row(plan: ImportPlan, message_id: int, attachment: Attachment) -> dict[str, Any]:
    path = ""
    size = 0
    if plan.archive and attachment.member:
        media_dir = Path(plan.media_dir)
        folder = media_dir / str(plan.user_id) / str(plan.import_id)
        target = extract_member(plan.archive, attachment.member, folder)
        path = target.relative_to(media_dir.resolve()).as_posix()
        size = target.stat().st_size

    if attachment.needs_transcription:
        status = "pending" if path else "missing"
    else:
        status = ""
    content_type = ""
    if attachment.file_name:
        content_type = mimetypes.guess_type(attachment.file_name)[0] or ""
        if attachment.file_name.lower().endswith(".opus"):
            content_type = "audio/ogg"
    return {
        "user": plan.user_id,
        "message": message_id,
        "kind": attachment.kind,
        "file_name": attachment.file_name or "",
        "content_type": content_type,
        "size_bytes": size,
        "path": path,
        "transcription_status": status,
        "created_at": utcnow(),
    }


def batches(messages: Iterable[ParsedMessage], size: int) -> Iterator[list[ParsedMessage]]:
    """Yield lists of up to ``size`` messages."""
    batch: list[ParsedMessage] = []
    for message in messages:
        batch.append(message)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_whatsapp(
    user: User,
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    me: str | None = None,
    date_order: str | None = None,
    source_name: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a WhatsApp export for ``user`` in this process.

    Parameters:
      user: The owner; their time zone and locale shape the reading.
      path: The ``.txt`` or ``.zip`` export.
      settings: Gives the media folder.
      me: The participant who is the user, by name or number.
      date_order: ``dmy``, ``mdy`` or ``ymd`` to force the date order.
      source_name: Name shown for the file, by default its file name.
      progress: Called with messages done and the total after each batch.

    Returns:
      The import's id, conversation, status and numbers.

    Raises:
      WhatsAppError: When the file is not a readable export; nothing is stored.
      MeRequiredError: When ``me`` is missing and unclear; nothing is stored.
    """
    prepared = prepare(user, Path(path), settings, me=me, date_order=date_order,
                       source_name=source_name)
    plan = prepared.plan
    try:
        _store_spooled(prepared, progress)
        return finish(plan.import_id)
    except ImportReplacedError:
        # Every writer has stopped, so no batch lands after this.
        deleted = delete_import_messages(settings, plan.user_id, plan.import_id,
                                         plan.conversation_id)
        logger.warning("Import %s was replaced while it was stored. Deleted the %d "
                       "messages it stored since.", plan.import_id, deleted.get("message", 0))
        raise
    except BaseException as error:
        _fail(plan.import_id, error)
        raise
    finally:
        prepared.close()


def _store_spooled(prepared: Prepared, progress: Progress | None) -> None:
    """Store the spooled messages, writing batches while the next ones are built.

    This thread builds the rows of each batch and writer threads store them.
    A writer waits on the database with the GIL released, so building and
    writing overlap. PostgreSQL gets :data:`POSTGRES_WRITERS` writers, each
    in its own transaction on its own connection, so message ids follow the
    file's order within a batch but may interleave between two batches.
    SQLite allows one writer at a time, so it gets one writer thread. Inside
    a caller's transaction the batches are written in this thread, because
    the writers' connections would not see its uncommitted rows.
    """
    plan = prepared.plan
    total = prepared.survey.total
    clock = LocalClock(ZoneInfo(plan.time_zone))
    database = Message._meta.database
    if database.in_transaction():
        done = 0
        for batch in prepared.packed_batches():
            write_rows(plan, message_rows(plan, batch, clock))
            done = _advance(plan, done, len(batch), total, progress)
        return

    writers = 1 if is_sqlite(database) else POSTGRES_WRITERS
    pending: deque[tuple[Future[int], int]] = deque()
    done = 0
    pool = ThreadPoolExecutor(writers, thread_name_prefix="whatsapp-import")
    try:
        for batch in prepared.packed_batches():
            rows = message_rows(plan, batch, clock)
            future = pool.submit(_write_with_connection, plan, rows)
            pending.append((future, len(batch)))
            # One batch at most waits while the writers are busy, so memory
            # stays flat whatever the size of the export.
            if len(pending) > writers:
                future, size = pending.popleft()
                future.result()
                done = _advance(plan, done, size, total, progress)
        while pending:
            future, size = pending.popleft()
            future.result()
            done = _advance(plan, done, size, total, progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _write_with_connection(plan: ImportPlan, rows: Rows) -> int:
    """Run :func:`write_rows` on a connection of the calling thread, closed after."""
    with Message._meta.database.connection_context():
        return write_rows(plan, rows)


def _advance(
    plan: ImportPlan, done: int, size: int, total: int, progress: Progress | None
) -> int:
    """Count a written batch, report progress and return the messages done."""
    done += size
    if progress is not None:
        progress(done, total)
    if done // BATCH_SIZE % PROGRESS_EVERY == 0:
        _record_progress(plan.import_id, done, total)
    return done


def _record_progress(import_id: int, done: int, total: int) -> None:
    row = Import.get_by_id(import_id)
    if row.status == REPLACED:
        raise ImportReplacedError(import_id)

    stats = dict(row.stats)
    # plan_reimport replaces an import whose progress stopped long ago, so
    # every update records its time.
    stats["progress"] = {**stats.get("progress", {}), "messages_done": done,
                         "messages_total": total, "updated_at": utcnow().isoformat()}
    Import.update(stats=stats).where(Import.id == import_id).execute()


def _fail(import_id: int, error: BaseException) -> None:
    Import.update(status="failed", error=str(error)[:2000], finished_at=utcnow()).where(
        (Import.id == import_id) & (Import.status != REPLACED)
    ).execute()
    logger.error("Import %s failed: %s.", import_id, type(error).__name__)


def finish(import_id: int) -> ImportResult:
    """Count what the import stored, mark it done or partial, and return its result.

    Counts come from the database, so a retried batch is never counted twice.

    Raises:
      ImportReplacedError: When a new reading of the file replaced the import.
    """
    row = Import.get_by_id(import_id)
    stats = dict(row.stats)
    plan = ImportPlan.from_json(stats["plan"])
    mine = Message.select().where(Message.source_import == import_id)
    chat_count = mine.where(Message.direction != "system").count()
    system_count = mine.where(Message.direction == "system").count()
    media = (
        AttachmentRow.select()
        .join(Message)
        .where(Message.source_import == import_id)
    )
    voice_ids = [
        item.id for item in media.where(AttachmentRow.transcription_status == "pending")
    ]
    zone = ZoneInfo(plan.time_zone)
    stats.update(
        messages=chat_count,
        system_messages=system_count,
        media=media.count(),
        duplicates_skipped=stats["parsed_messages"] - chat_count - system_count,
        first_message_at=_local_iso(stats.get("first_local"), zone),
        last_message_at=_local_iso(stats.get("last_local"), zone),
        import_id=import_id,
        conversation_id=plan.conversation_id,
    )
    stats["progress"] = {**stats.get("progress", {}),
                         "messages_done": stats["parsed_messages"]}
    status = "partial" if stats.get("unparsed_lines") else "done"
    updated = Import.update(status=status, stats=stats, finished_at=utcnow(),
                            processed_bytes=row.size_bytes).where(
        (Import.id == import_id) & (Import.status != REPLACED)
    ).execute()
    if not updated:
        raise ImportReplacedError(import_id)

    touch_conversation(plan.conversation_id)
    logger.info(
        "Import %s stored %d messages and %d system events and skipped %d duplicates.",
        import_id, chat_count, system_count, stats["duplicates_skipped"],
    )
    return ImportResult(import_id, plan.conversation_id, status, stats, voice_ids,
                        batched="chunks_total" in stats)


def _local_iso(local: str | None, zone: ZoneInfo) -> str | None:
    if local is None:
        return None
    return LocalClock(zone).to_utc(datetime.datetime.fromisoformat(local)).astimezone(
        zone
    ).isoformat()


def public_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Return the stats without the internal plan, for output."""
    return {key: value for key, value in stats.items() if key != "plan"}


# Batch imports: chunk files written once, stored by several workers.


def chunk_folder(settings: Settings, import_id: int) -> Path:
    """Return the folder of an import's chunk files."""
    return settings.media_dir / "imports" / str(import_id)


def remove_chunk_files(settings: Settings, import_id: int) -> None:
    """Remove the chunk files of an import that no job reads any more.

    The files are copies of the export's messages, so they go once the
    import is finished or replaced. A failure to remove them is logged and
    does not fail the import.
    """
    folder = chunk_folder(settings, import_id)
    if not folder.is_dir():
        return

    try:
        shutil.rmtree(folder)
    except OSError as error:
        logger.warning("Failed to remove the chunk files of import %s in %s: %s.",
                       import_id, folder, error)
    else:
        logger.info("Removed the chunk files of import %s.", import_id)


def _encode(message: ParsedMessage) -> list[Any]:
    return [
        message.key, message.timestamp.isoformat(), message.sender, message.sender_phone,
        message.text, message.kind, message.system_event,
        [[a.kind, a.file_name, a.needs_transcription, a.member] for a in message.attachments],
        message.is_deleted, message.is_edited, message.is_location, message.line_number,
    ]


def _decode(item: list[Any]) -> ParsedMessage:
    (key, stamp, sender, phone, text, kind, event, media, deleted, edited, location,
     line) = item
    return ParsedMessage(
        timestamp=datetime.datetime.fromisoformat(stamp), sender=sender,
        sender_phone=phone, text=text, kind=kind, system_event=event,
        attachments=tuple(Attachment(*entry) for entry in media), is_deleted=deleted,
        is_edited=edited, is_location=location, key=key, line_number=line,
    )


def split_into_chunks(
    user: User,
    path: str | os.PathLike[str],
    settings: Settings,
    *,
    me: str | None = None,
    date_order: str | None = None,
    source_name: str | None = None,
    chunk_size: int | None = None,
) -> tuple[int, int]:
    """Prepare a batch import and write its messages as chunk files.

    Each chunk file holds the parsed messages of one range, so workers store
    them without reading the export again. Files are written under a
    temporary name and renamed, so a worker never reads half a chunk.

    Returns:
      The import id and the number of chunks.

    Raises:
      WhatsAppError: When the file is not a readable export; nothing is stored.
      MeRequiredError: When ``me`` is missing and unclear; nothing is stored.
    """
    prepared = prepare(user, Path(path), settings, me=me, date_order=date_order,
                       source_name=source_name, status="splitting")
    import_id = prepared.plan.import_id
    folder = chunk_folder(settings, import_id)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    size = chunk_size or CHUNK_SIZE
    try:
        for count, chunk in enumerate(batches(prepared.messages(), size), 1):
            target = folder / f"chunk-{count}.json"
            temporary = target.with_suffix(".tmp")
            with open(temporary, "w", encoding="utf-8") as stream:
                json.dump([_encode(message) for message in chunk], stream,
                          ensure_ascii=False)
            os.replace(temporary, target)
    except BaseException as error:
        _fail(import_id, error)
        raise
    finally:
        prepared.close()

    stats = dict(Import.get_by_id(import_id).stats)
    stats.update(chunks_total=count, chunks_done=[])
    Import.update(status="running", stats=stats).where(Import.id == import_id).execute()
    logger.info("Split import %s into %d chunks.", import_id, count)
    return import_id, count


def store_chunk(
    settings: Settings, import_id: int, chunk: int, *, user_id: int | None = None
) -> ImportResult | None:
    """Store chunk ``chunk`` of a batch import; finish the import after the last one.

    Safe to run again after a crash: rows already stored are skipped, and a
    chunk marked done is not read again.

    Returns:
      The import's result when this call finished the import, else None.

    Raises:
      NotFound: When the import or its chunk file is missing.
    """
    row = Import.get_or_none(Import.id == import_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise NotFound("import", import_id)
    if chunk in row.stats.get("chunks_done", []):
        logger.info("Chunk %d of import %s is already stored.", chunk, import_id)
        return None

    if row.status == REPLACED:
        logger.info("Chunk %d of import %s is not stored: the import was replaced.",
                    chunk, import_id)
        return None

    path = chunk_folder(settings, import_id) / f"chunk-{chunk}.json"
    if not path.is_file():
        # Another delivery of this job may have stored the chunk and removed
        # the files since the row was read.
        row = Import.get_by_id(import_id)
        if chunk in row.stats.get("chunks_done", []) or row.status not in IN_PROGRESS:
            logger.info("Chunk %d of import %s was stored by another job.", chunk, import_id)
            return None

        raise NotFound("chunk file", str(path), "Split the import again.")

    plan = ImportPlan.from_json(row.stats["plan"])
    with open(path, encoding="utf-8") as stream:
        messages = [_decode(item) for item in json.load(stream)]
    clock = LocalClock(ZoneInfo(plan.time_zone))
    for batch in batches(messages, BATCH_SIZE):
        store_chunk_batch(plan, batch, clock)

    result = _mark_chunk(import_id, chunk, len(messages))
    if result is not None:
        # Every chunk is marked done, so a chunk job run again returns
        # before it looks for its file.
        remove_chunk_files(settings, import_id)

    return result


def store_chunk_batch(plan: ImportPlan, batch: list[ParsedMessage], clock: LocalClock) -> int:
    """Store one batch of a chunk; a seam where tests simulate a crash."""
    return store_messages(plan, batch, clock)


def _mark_chunk(import_id: int, chunk: int, size: int) -> ImportResult | None:
    with locked_row(Import, import_id) as row:
        if row is None:
            raise NotFound("import", import_id)

        stats = dict(row.stats)
        done = sorted(set(stats.get("chunks_done", [])) | {chunk})
        stats["chunks_done"] = done
        progress = dict(stats.get("progress", {}))
        progress["chunks_done"] = len(done)
        progress["chunks_total"] = stats.get("chunks_total", 0)
        stats["progress"] = progress
        last = len(done) == stats.get("chunks_total") and row.status == "running"
        Import.update(stats=stats, status="finishing" if last else row.status).where(
            Import.id == import_id
        ).execute()

    logger.info("Stored chunk %d of import %s (%d messages).", chunk, import_id, size)
    if not last:
        return None

    return finish(import_id)
