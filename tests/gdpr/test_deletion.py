from __future__ import annotations

import json
from pathlib import Path

import peewee
import pytest
import redis

from tests.gdpr.factory import Account, fill_account, row_counts
from wallie.db.fields import utcnow
from wallie.db.models import (
    MODELS,
    Attachment,
    AuditLog,
    Contact,
    Conversation,
    DeletionRequest,
    Import,
    Message,
    User,
    as_dict,
)
from wallie.gdpr import check_rules, request_deletion, run_deletion
from wallie.gdpr.deletion import dry_run_counts
from wallie.gdpr.errors import PersonalDataInReceipt
from wallie.gdpr.rules import RECEIPT_ACTIONS
from wallie.gdpr.external import user_upload_dir
from wallie.settings import Settings
from wallie.whatsapp.importer import chunk_folder


def _rows_naming_user(user_id: int) -> dict[str, int]:
    """Count rows that point at ``user_id`` by a user foreign key or a ``user_id`` column."""
    found = {}
    for model in MODELS:
        fields = [
            field
            for field in model._meta.sorted_fields
            if (isinstance(field, peewee.ForeignKeyField) and field.rel_model is User)
            or field.name == "user_id"
            or (model is User and field.name == "id")
        ]
        for field in fields:
            query = model.select().where(field == user_id)
            if model is AuditLog:
                query = query.where(AuditLog.action.not_in(RECEIPT_ACTIONS))

            if model is DeletionRequest:
                continue

            count = query.count()
            if count:
                found[f"{model._meta.table_name}.{field.name}"] = count

    return found


def _all_text() -> str:
    dumps = []
    for model in MODELS:
        for row in model.select():
            dumps.append(json.dumps(as_dict(row), default=str))

    return "\n".join(dumps)


def _delete_account(account: Account, settings: Settings) -> dict:
    request = request_deletion("user", account.user.id, account.user.id, reference="T-1", requested_by="ops")
    return run_deletion(request.id, settings, batch_size=2).receipt


def _check_account_gone(account: Account, other: Account, before: dict[str, int], after: dict[str, int], settings: Settings) -> None:
    assert _rows_naming_user(account.user.id) == {}
    text = _all_text()
    for value in account.personal_values:
        assert value not in text, value

    for path in account.files:
        assert not Path(path).exists(), path

    for path in other.files:
        assert Path(path).exists(), path


def test_rules_cover_every_model() -> None:
    check_rules()


def test_account_deletion_complete(settings: Settings, db: peewee.Database) -> None:
    # Given two accounts of the same shape
    account = fill_account("ana", settings, "+31611111111")
    other = fill_account("bob", settings, "+31622222222")
    other_before = _rows_naming_user(other.user.id)
    before = row_counts()

    # When the first is deleted
    receipt = _delete_account(account, settings)

    # Then nothing of it remains and the other is untouched
    after = row_counts()
    _check_account_gone(account, other, before, after, settings)
    assert _rows_naming_user(other.user.id) == other_before
    for table, count in receipt["tables"].items():
        # The request and its receipt add rows to these two tables.
        added = {"audit_log": 2}.get(table, 0)
        assert before[table] - after[table] + added == count, table

    assert after["deletion_request"] == before["deletion_request"] + 1
    assert receipt["files"]["media"] == 2
    assert receipt["files"]["outbox"] == 2
    # The import's upload and chunk file, and the upload of a failed import.
    assert receipt["files"]["uploads"] == 3
    assert not user_upload_dir(settings, account.user.id).exists()


def test_account_deletion_with_redis(redis_settings: Settings, db: peewee.Database) -> None:
    account = fill_account("ana", redis_settings, "+31611111111")
    other = fill_account("bob", redis_settings, "+31622222222")
    before = row_counts()

    receipt = _delete_account(account, redis_settings)

    client = redis.Redis.from_url(redis_settings.redis_url)
    remaining = {key.decode() for key in client.scan_iter(match="*")}
    client.close()
    _check_account_gone(account, other, before, row_counts(), redis_settings)
    assert not [key for key in remaining if f":user:{account.user.id}:" in key]
    assert set(other.redis_keys) <= remaining
    assert receipt["redis_keys"] == 2


def test_account_deletion_keeps_receipt(settings: Settings, db: peewee.Database) -> None:
    account = fill_account("ana", settings, "+31611111111")

    receipt = _delete_account(account, settings)

    stored = AuditLog.get((AuditLog.action == "gdpr.receipt") & (AuditLog.user_id == account.user.id) & (AuditLog.target == f"user:{account.user.id}"))
    assert stored.details == receipt
    assert receipt["reference"] == "T-1"
    assert receipt["backup_retention_days"] == 30
    for value in account.personal_values:
        assert value not in json.dumps(receipt)


def test_account_dry_run_matches_receipt(settings: Settings, db: peewee.Database) -> None:
    account = fill_account("ana", settings, "+31611111111")
    fill_account("bob", settings, "+31622222222")
    before = row_counts()

    counts = dry_run_counts("user", account.user.id, account.user.id, settings)

    assert row_counts() == before
    receipt = _delete_account(account, settings)
    assert counts["tables"] == receipt["tables"]
    assert counts["files"] == receipt["files"]


def test_deletion_resumes_after_crash(settings: Settings, db: peewee.Database) -> None:
    # Given a deletion that dies after its first batch
    account = fill_account("ana", settings, "+31611111111")
    twin = fill_account("bob", settings, "+31622222222")
    request = request_deletion("user", account.user.id, account.user.id)

    def crash(request: DeletionRequest) -> None:
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        run_deletion(request.id, settings, batch_size=1, after_batch=crash)

    assert DeletionRequest.get_by_id(request.id).status == "failed"

    # When it is run again
    resumed = run_deletion(request.id, settings, batch_size=1).receipt

    # Then its totals equal those of a deletion that ran straight through
    straight_request = request_deletion("user", twin.user.id, twin.user.id)
    straight = run_deletion(straight_request.id, settings, batch_size=1).receipt
    assert resumed["tables"] == straight["tables"]
    assert resumed["files"] == straight["files"]


def test_deletion_done_twice_same_receipt(settings: Settings, db: peewee.Database) -> None:
    account = fill_account("ana", settings, "+31611111111")
    request = request_deletion("user", account.user.id, account.user.id)

    first = run_deletion(request.id, settings).receipt
    second = run_deletion(request.id, settings).receipt

    assert first == second
    assert AuditLog.select().where(AuditLog.action == "gdpr.receipt", AuditLog.target == f"user:{account.user.id}").count() == 1


@pytest.mark.parametrize("reference", ["DSR-2026-0142", "T-1", "ticket 4711"])
def test_request_accepts_ticket_reference(settings: Settings, db: peewee.Database, reference: str) -> None:
    account = fill_account("ana", settings, "+31611111111")

    request = request_deletion("user", account.user.id, account.user.id, reference=reference)

    assert request.reference == reference


@pytest.mark.parametrize("reference", ["ana@example.com", "+31 6 1234 5678", "0612345678"])
def test_request_rejects_personal_reference(settings: Settings, db: peewee.Database, reference: str) -> None:
    account = fill_account("ana", settings, "+31611111111")

    with pytest.raises(PersonalDataInReceipt):
        request_deletion("user", account.user.id, account.user.id, reference=reference)


def _add_group(account: Account, other_contact: Contact) -> tuple[Conversation, Message]:
    """Add a group chat where the client and another contact both wrote."""
    group = Conversation.create(user=account.user, channel="whatsapp", external_id=f"group-{account.tag}", is_group=True)
    from wallie.db.models import ConversationParticipant

    for contact in (account.rows["client"], other_contact):
        ConversationParticipant.create(user=account.user, conversation=group, contact=contact)

    client_message = Message.create(
        user=account.user, channel="whatsapp", external_id=f"g-{account.tag}-1", conversation=group,
        sender=account.rows["client"], direction="inbound", sent_at=account.rows["message"].sent_at,
    )
    Message.create(
        user=account.user, channel="whatsapp", external_id=f"g-{account.tag}-2", conversation=group,
        sender=other_contact, direction="inbound", sent_at=account.rows["message"].sent_at,
    )
    return group, client_message


def test_contact_deletion_exact_rows(settings: Settings, db: peewee.Database) -> None:
    # Given a client with a 1:1 chat and a message in a group chat with a colleague
    account = fill_account("ana", settings, "+31611111111")
    fill_account("bob", settings, "+31622222222")
    colleague = Contact.create(user=account.user, name="Colleague")
    group, _ = _add_group(account, colleague)
    before = row_counts()
    dry = dry_run_counts("contact", account.user.id, account.rows["client"].id, settings)

    # When the client's data is erased
    request = request_deletion("contact", account.user.id, account.rows["client"].id)
    receipt = run_deletion(request.id, settings, batch_size=1).receipt

    # Then exactly the client's rows and its emptied 1:1 chat are gone
    after = row_counts()
    removed = {table: before[table] - after[table] for table in before if before[table] > after[table]}
    added = {table: after[table] - before[table] for table in before if before[table] < after[table]}
    assert added == {"audit_log": 2, "deletion_request": 1, "outbox_item": 1}
    assert removed == {
        "contact": 1,
        "contact_handle": 2,
        "conversation": 1,
        "conversation_participant": 3,
        "message": 2,
        "attachment": 1,
        "reminder": 1,
        "entity": 1,
        "lead_score": 1,
    }
    assert receipt["tables"] == removed
    assert dry["tables"] == removed
    assert Conversation.get_or_none(Conversation.id == group.id) is not None
    assert User.get_or_none(User.id == account.user.id) is not None
    photo = next(path for path in account.files if "photo-" in path)
    assert not Path(photo).exists()
    assert account.rows["upload"].exists()


def test_contact_deletion_notifies_user(settings: Settings, db: peewee.Database) -> None:
    account = fill_account("ana", settings, "+31611111111")
    request = request_deletion("contact", account.user.id, account.rows["client"].id)

    result = run_deletion(request.id, settings)

    from wallie.db.models import OutboxItem

    notice = OutboxItem.get_by_id(result.notice_id)
    assert notice.recipient == account.user.email
    assert "client-ana@example.org" not in notice.payload["text"]


def test_import_deletion_exact_rows(settings: Settings, db: peewee.Database) -> None:
    # Given an import that created one message (with an attachment) and a document
    account = fill_account("ana", settings, "+31611111111")
    fill_account("bob", settings, "+31622222222")
    before = row_counts()

    # When the import is deleted
    dry = dry_run_counts("import", account.user.id, account.rows["import"].id, settings)
    request = request_deletion("import", account.user.id, account.rows["import"].id)
    receipt = run_deletion(request.id, settings).receipt

    # Then its rows and the conversation it left empty are gone, the contacts stay
    after = row_counts()
    removed = {table: before[table] - after[table] for table in before if before[table] > after[table]}
    added = {table: after[table] - before[table] for table in before if before[table] < after[table]}
    assert added == {"audit_log": 2, "deletion_request": 1, "outbox_item": 1}
    assert removed == {
        "import": 1,
        "message": 1,
        "attachment": 1,
        "knowledge_document": 1,
        "entity": 1,
        "reminder": 1,
        "conversation": 1,
        "conversation_participant": 2,
        "lead_score": 1,
    }
    assert receipt["tables"] == removed
    assert Contact.get_by_id(account.rows["client"].id) is not None
    assert Attachment.select().where(Attachment.user == account.user).count() == 0
    # Its upload and chunk file are gone; another import's upload stays.
    assert receipt["files"]["uploads"] == 2
    assert dry["files"] == receipt["files"]
    assert not account.rows["upload"].exists()
    assert not chunk_folder(settings, account.rows["import"].id).exists()
    assert account.rows["failed_upload"].exists()


def _add_contact_notices(account: Account, settings: Settings) -> dict:
    """Add a delivered hot-lead crossing, a legacy group reminder and a daily summary."""
    from wallie.analysis.hot_leads import queue_hot_lead
    from wallie.db.models import LeadScore, Reminder
    from wallie.notify import MailContent, add_email, deliver

    client = account.rows["client"]
    score = LeadScore.get(LeadScore.contact == client)
    hot = queue_hot_lead(account.user.id, client.id, score.id, settings)
    for item in hot:
        deliver(item.id, settings)

    colleague = Contact.create(user=account.user, name="Colleague")
    group, _ = _add_group(account, colleague)
    promise = Message.create(
        user=account.user, channel="whatsapp", external_id=f"g-{account.tag}-3", conversation=group,
        direction="outbound", sent_at=account.rows["message"].sent_at, body="I will call",
    )
    legacy = Reminder.create(
        user=account.user, key=f"legacy-{account.tag}", conversation=group, source_message=promise,
        text=f"You promised {client.name}: “I will call”", due_at=promise.sent_at,
    )
    summary = add_email(
        account.user, f"daily-summary:{account.tag}", account.user.email,
        MailContent(subject="Your day", text=f"Follow up with {client.name} and Colleague."),
    )
    deliver(summary.id, settings)
    return {"hot": [item.id for item in hot], "legacy": legacy.id, "summary": summary.id}


def test_contact_deletion_removes_notices(settings: Settings, db: peewee.Database) -> None:
    from wallie.db.models import Notification, OutboxItem, Reminder
    from wallie.notify.transports import eml_file_name

    # Given a contact with a delivered hot-lead notice, mail and in-app
    # notification, a group reminder without contact naming it, and a summary
    account = fill_account("ana", settings, "+31611111111")
    other = fill_account("bob", settings, "+31622222222")
    made = _add_contact_notices(account, settings)
    _add_contact_notices(other, settings)
    hot_mails = [
        settings.outbox_dir / eml_file_name(item.idempotency_key)
        for item in OutboxItem.select().where(OutboxItem.id.in_(made["hot"]) & (OutboxItem.kind == "email"))
    ]
    assert all(path.exists() for path in hot_mails)
    client_id = account.rows["client"].id
    dry = dry_run_counts("contact", account.user.id, client_id, settings)

    # When the contact's data is erased
    request = request_deletion("contact", account.user.id, client_id)
    receipt = run_deletion(request.id, settings).receipt

    # Then the notices about it alone are gone, with their mail files
    assert OutboxItem.select().where(OutboxItem.id.in_(made["hot"])).count() == 0
    assert not any(path.exists() for path in hot_mails)
    mine = Notification.select().where(Notification.user == account.user)
    assert [note.kind for note in mine] == ["hot_lead"]  # the factory's, with no contact id
    assert Reminder.get_or_none(Reminder.id == made["legacy"]) is None
    assert receipt["tables"]["outbox_item"] == 2
    assert receipt["tables"]["notification"] == 1
    assert receipt["files"]["outbox"] == 1
    # The summary naming several contacts is kept and counted
    assert OutboxItem.get_or_none(OutboxItem.id == made["summary"]) is not None
    # The factory's notification names the client too but carries no contact id.
    assert receipt["mentions_left"] == 2
    assert dry["tables"] == receipt["tables"]
    assert dry["files"] == receipt["files"]
    assert dry["mentions_left"] == receipt["mentions_left"]
    # And the other account keeps its notices
    others = Notification.select().where(Notification.user == other.user).count()
    assert others == 2


def test_contact_reminder_deleted_with_source_message(settings: Settings, db: peewee.Database) -> None:
    from wallie.db.models import Reminder

    # Given a reminder with no contact whose source is a message the client sent
    account = fill_account("ana", settings, "+31611111111")
    colleague = Contact.create(user=account.user, name="Colleague")
    group, client_message = _add_group(account, colleague)
    reminder = Reminder.create(
        user=account.user, key="from-client", conversation=group, source_message=client_message,
        text="Someone asked you to call", due_at=client_message.sent_at,
    )

    request = request_deletion("contact", account.user.id, account.rows["client"].id)
    run_deletion(request.id, settings)

    assert Reminder.get_or_none(Reminder.id == reminder.id) is None
    assert Conversation.get_or_none(Conversation.id == group.id) is not None


def test_contact_number_redacted_in_kept_rows(settings: Settings, db: peewee.Database) -> None:
    # Given a chat titled with the client's number, in which the user also wrote
    user = User.create(email="sam@example.com")
    client = Contact.create(user=user, name="+447700900123", phone="+447700900123")
    chat = Conversation.create(user=user, channel="whatsapp", external_id="c1",
                               title="+447700900123", contact=client)
    Message.create(user=user, channel="whatsapp", external_id="m1", conversation=chat,
                   sender=client, direction="inbound", sent_at=utcnow(), body="Hi")
    Message.create(user=user, channel="whatsapp", external_id="m2", conversation=chat,
                   direction="outbound", sent_at=utcnow(), body="I'll send the quote tomorrow")
    Import.create(user=user, kind="whatsapp", source_name="chat.txt", sha256="0" * 64, status="done",
                  stats={"participants": ["+447700900123", "Sam"],
                         "plan": {"contacts": {"+44 7700 900123\x1f+447700900123": client.id}}})
    dry = dry_run_counts("contact", user.id, client.id, settings)

    # When the client's data is erased
    request = request_deletion("contact", user.id, client.id)
    receipt = run_deletion(request.id, settings).receipt

    # Then the kept chat and import no longer carry the number
    kept = Conversation.get_by_id(chat.id)
    stats = Import.get().stats
    assert kept.title == "[erased]"
    assert "+447700900123" not in json.dumps(stats)
    assert "900123" not in json.dumps(stats)
    assert receipt["values_redacted"] == 3
    assert dry["values_redacted"] == 3
