"""Run a GDPR erasure in batches that a crash can resume, and write its receipt.

A :class:`~wallie.db.models.DeletionRequest` row records the scope, the
target ids and the counts so far.  Each batch selects at most
``batch_size`` ids of one table, removes their files, deletes the rows and
adds the counts to the request, all in one transaction, so locks are short
and a run that dies mid-way resumes with totals that match what is gone.
Running a finished request again returns its receipt and deletes nothing.

Receipts hold ids, counts, dates and the operator's reference, never
emails, names or phone numbers; :func:`request_deletion` rejects a
reference or requester that looks like one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..db.fields import utcnow
from ..db.models import (
    Attachment,
    AuditLog,
    DeletionRequest,
    Import,
    Message,
    Notification,
    OutboxItem,
    Reminder,
    User,
)
from ..errors import NotFound
from ..locks import exclusive
from ..logging import get_logger
from ..notify import MailContent, add_email
from ..settings import Settings
from . import external
from .errors import DeletionInProgress, PersonalDataInReceipt
from .notices import ContactNotices, find_contact_notices
from .redact import redact_contact_copies
from .plan import (
    Step,
    cascade_steps,
    chunks,
    contact_conversations,
    contact_roots,
    conversation_steps,
    empty_conversations,
    import_conversations,
    import_roots,
    is_user_step,
    user_steps,
)
from .rules import check_rules

logger = get_logger(__name__)

#: Deletion scopes: a whole account, one contact of a user, one import.
SCOPES = ("user", "contact", "import")

#: Rows deleted per transaction.
DEFAULT_BATCH_SIZE = 1000

#: Longest a single run of a request may take before the worker stops it, in
#: milliseconds; the actor's retry resumes where it stopped.
RUN_TIME_LIMIT_MS = 2 * 3_600_000

#: Life of the lock that keeps two processes off one request, in milliseconds:
#: the run time limit plus a margin, so a killed worker blocks the retry at
#: most this long.
LOCK_TTL_MS = RUN_TIME_LIMIT_MS + 10 * 60_000

#: Audit log action of a request and of its receipt.
REQUESTED_ACTION = "gdpr.requested"
RECEIPT_ACTION = "gdpr.receipt"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: A phone number: "+" then 8 or more digits and separators, or 10 or more
#: digits and separators without "+", standing
#: alone so that ticket numbers such as "DSR-2026-0142" pass.
_PHONE = re.compile(r"(?<![\w-])(?:\+\d[\d\s().-]{6,}\d|\d[\d\s().]{8,}\d)(?![\w-])")

#: Called after each committed batch with the request; tests use it to crash.
AfterBatch = Callable[[DeletionRequest], None]


@dataclass(frozen=True)
class DeletionResult:
    """What :func:`run_deletion` did: the receipt and the outbox item of its notice."""

    receipt: dict[str, Any]
    notice_id: int | None


def check_no_personal_data(name: str, value: str) -> None:
    """Reject ``value`` if it looks like an email address or a phone number.

    Raises:
      PersonalDataInReceipt: It does; the message names what to use instead.
    """
    if _EMAIL.search(value) or _PHONE.search(value):
        raise PersonalDataInReceipt(
            f"The {name} {value!r} looks like an email address or phone number, which a "
            "deletion receipt must not hold. Use a ticket number or an operator login."
        )


def empty_counts() -> dict[str, Any]:
    """Return the counts of a request that has deleted nothing yet."""
    return {
        "tables": {},
        "files": {"media": 0, "outbox": 0, "uploads": 0},
        "redis_keys": 0,
        "mentions_left": 0,
        "values_redacted": 0,
    }


def request_deletion(
    scope: str,
    user_id: int,
    target_id: int,
    *,
    reference: str = "",
    requested_by: str = "",
    notify_to: str = "",
) -> DeletionRequest:
    """Record a deletion request, or return the unfinished one for the same target.

    Parameters:
      scope: ``user``, ``contact`` or ``import``.
      user_id: The account the target belongs to.
      target_id: The user, contact or import id.
      reference: The operator's request id, such as a ticket number.
      requested_by: Who asked, as an operator login.
      notify_to: Where the receipt is mailed.  Empty: the user for a
        contact or import scope, nobody for a whole account.

    Raises:
      ValueError: ``scope`` is not one of :data:`SCOPES`.
      PersonalDataInReceipt: ``reference`` or ``requested_by`` holds an
        email address or phone number.
    """
    if scope not in SCOPES:
        raise ValueError(f"Unknown deletion scope {scope!r}; use one of {', '.join(SCOPES)}.")

    check_no_personal_data("reference", reference)
    check_no_personal_data("requester", requested_by)
    check_rules()
    database = DeletionRequest._meta.database
    with database.atomic():
        existing = (
            DeletionRequest.select()
            .where(
                (DeletionRequest.scope == scope)
                & (DeletionRequest.user_id == user_id)
                & (DeletionRequest.target_id == target_id)
                & (DeletionRequest.status != "done")
            )
            .first()
        )
        if existing is not None:
            return existing

        request = DeletionRequest.create(
            scope=scope,
            user_id=user_id,
            target_id=target_id,
            reference=reference,
            requested_by=requested_by,
            notify_to=notify_to,
            counts=empty_counts(),
        )
        AuditLog.create(
            action=REQUESTED_ACTION,
            operator=requested_by,
            user_id=user_id,
            target=f"{scope}:{target_id}",
            details={"request_id": request.id, "scope": scope, "reference": reference},
        )

    logger.info("Recorded deletion request %d (%s %d of user %d).", request.id, scope, target_id, user_id)
    return request


def run_deletion(
    request_id: int,
    settings: Settings,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after_batch: AfterBatch | None = None,
) -> DeletionResult:
    """Delete everything request ``request_id`` covers and write its receipt.

    Safe to run again after a crash or on a finished request: deleted rows
    are not found again, and a finished request returns its stored receipt.

    Raises:
      NotFound: No request has this id.
      DeletionInProgress: Another process is running this request.
    """
    request = DeletionRequest.get_or_none(DeletionRequest.id == request_id)
    if request is None:
        raise NotFound("deletion request", request_id)

    if request.status != "done":
        with exclusive(settings, f"gdpr-deletion:{request_id}", LOCK_TTL_MS) as acquired:
            if not acquired:
                raise DeletionInProgress(f"Deletion request {request_id} is running in another process.")

            _run_locked(request, settings, batch_size, after_batch)

    receipt = receipt_of(request)
    return DeletionResult(receipt, _queue_notice(request, receipt))


def _run_locked(
    request: DeletionRequest, settings: Settings, batch_size: int, after_batch: AfterBatch | None
) -> None:
    request.status = "running"
    request.started_at = request.started_at or utcnow()
    request.error = ""
    request.save()
    logger.info("Started deletion request %d (%s).", request.id, request.scope)
    try:
        if request.scope == "user":
            _delete_user(request, settings, batch_size, after_batch)
        else:
            _delete_part(request, settings, batch_size, after_batch)
    except Exception as error:
        # The message of a database error can quote row values, so only the
        # type is stored.
        DeletionRequest.update(status="failed", error=type(error).__name__).where(
            DeletionRequest.id == request.id
        ).execute()
        logger.error("Deletion request %d failed (%s); run it again to resume.", request.id, type(error).__name__)
        raise

    _finish(request, settings)


def _delete_user(
    request: DeletionRequest, settings: Settings, batch_size: int, after_batch: AfterBatch | None
) -> None:
    for step in user_steps(request.user_id):
        if is_user_step(step):
            # The address is needed to find mail files, so this runs while
            # the user row still exists.
            _remove_user_files(request, settings)

        _run_step(request, step, settings, batch_size, after_batch)

    _add_counts(request, {"redis_keys": external.delete_redis_keys(settings, request.user_id)})


def _remove_user_files(request: DeletionRequest, settings: Settings) -> None:
    user = User.get_or_none(User.id == request.user_id)
    outbox = external.remove_outbox_files_to(settings, user.email) if user else 0
    media = external.remove_user_media_dir(settings, request.user_id)
    uploads = external.remove_user_upload_dir(settings, request.user_id)
    redis_keys = external.delete_redis_keys(settings, request.user_id)
    files = {"media": media, "outbox": outbox, "uploads": uploads}
    _add_counts(request, {"files": files, "redis_keys": redis_keys})


def _delete_part(
    request: DeletionRequest, settings: Settings, batch_size: int, after_batch: AfterBatch | None
) -> None:
    if "conversations" not in request.plan:
        # One transaction: the plan and the redaction land together or not at all.
        with DeletionRequest._meta.database.atomic():
            # Computed once: after the first batches the contact's participant
            # rows are gone, so a resumed run could not find them again.
            plan: dict[str, Any] = {"conversations": _candidates(request)}
            if request.scope == "contact":
                notices = find_contact_notices(request.user_id, request.target_id)
                plan["notices"] = _notice_plan(notices)
                # NOTE: summaries and reports that name several contacts are
                # kept, so the contact's name stays in them and their .eml files.
                # The receipt counts these items as mentions_left.
                redacted = redact_contact_copies(
                    request.user_id, request.target_id, plan["conversations"]
                )
                request.counts = merge_counts(
                    request.counts or empty_counts(),
                    {"mentions_left": notices.mentions_left, "values_redacted": redacted},
                )

            request.plan = {**request.plan, **plan}
            request.save()

    for step in _root_steps(request) + _notice_steps(request.user_id, request.plan):
        _run_step(request, step, settings, batch_size, after_batch)

    for chunk in chunks(request.plan["conversations"]):
        empty = empty_conversations(chunk)
        if empty:
            for step in conversation_steps(request.user_id, empty):
                _run_step(request, step, settings, batch_size, after_batch)


def _notice_plan(notices: ContactNotices) -> dict[str, list[int]]:
    return {
        "outbox_item": notices.outbox_ids,
        "notification": notices.notification_ids,
        "reminder": notices.reminder_ids,
    }


def _notice_steps(user_id: int, plan: dict[str, Any]) -> list[Step]:
    """Return the steps that delete the rows :func:`find_contact_notices` found."""
    models = {"outbox_item": OutboxItem, "notification": Notification, "reminder": Reminder}
    steps = []
    for table, ids in (plan.get("notices") or {}).items():
        model = models[table]
        for chunk in chunks(ids):
            steps.append(Step(model, (model.user == user_id) & model.id.in_(list(chunk))))

    return steps


def _candidates(request: DeletionRequest) -> list[int]:
    if request.scope == "contact":
        return contact_conversations(request.user_id, request.target_id)

    return import_conversations(request.user_id, request.target_id)


def _root_steps(request: DeletionRequest) -> list[Step]:
    if request.scope == "contact":
        roots = contact_roots(request.user_id, request.target_id)
    else:
        roots = import_roots(request.user_id, request.target_id)

    return cascade_steps(roots, request.user_id)


def _run_step(
    request: DeletionRequest,
    step: Step,
    settings: Settings,
    batch_size: int,
    after_batch: AfterBatch | None,
) -> None:
    while _delete_batch(request, step, settings, batch_size):
        if after_batch is not None:
            after_batch(request)


def _delete_batch(request: DeletionRequest, step: Step, settings: Settings, batch_size: int) -> int:
    """Delete one batch of ``step`` and add its counts to the request; return the rows deleted."""
    key = step.model._meta.primary_key
    database = step.model._meta.database
    with database.atomic():
        ids = [row[0] for row in step.model.select(key).where(step.condition).limit(batch_size).tuples()]
        if not ids:
            return 0

        files = _remove_files(step, ids, settings)
        deleted = step.model.delete().where(key.in_(ids)).execute()
        _add_counts(request, {"tables": {step.table: deleted}, "files": files})

    return deleted


def _remove_files(step: Step, ids: list[int], settings: Settings) -> dict[str, int]:
    # Files go before the rows that name them.  If the transaction then
    # fails, the rows remain without files and the resumed run deletes them.
    if step.model is Attachment:
        paths = [row[0] for row in Attachment.select(Attachment.path).where(Attachment.id.in_(ids)).tuples()]
        return {"media": external.remove_media_files(settings, paths)}

    if step.model is OutboxItem:
        query = OutboxItem.select(OutboxItem.idempotency_key).where(
            OutboxItem.id.in_(ids) & (OutboxItem.kind == "email")
        )
        return {"outbox": external.remove_outbox_files(settings, [row[0] for row in query.tuples()])}

    if step.model is Import:
        query = Import.select(Import.id, Import.user, Import.sha256).where(Import.id.in_(ids))
        removed = sum(external.remove_import_files(settings, *row) for row in query.tuples())
        return {"uploads": removed}

    return {}


def _add_counts(request: DeletionRequest, counts: dict[str, Any]) -> None:
    request.counts = merge_counts(request.counts or empty_counts(), counts)
    DeletionRequest.update(counts=request.counts).where(DeletionRequest.id == request.id).execute()


def merge_counts(total: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Return ``total`` with the numbers of ``more`` added, key by key, at any depth."""
    merged = dict(total)
    for key, value in more.items():
        if isinstance(value, dict):
            merged[key] = merge_counts(merged.get(key) or {}, value)
        else:
            merged[key] = merged.get(key, 0) + value

    return merged


def _finish(request: DeletionRequest, settings: Settings) -> None:
    database = DeletionRequest._meta.database
    with database.atomic():
        request.status = "done"
        request.finished_at = utcnow()
        request.save()
        receipt = build_receipt(request, settings)
        AuditLog.create(
            action=RECEIPT_ACTION,
            operator=request.requested_by,
            user_id=request.user_id,
            target=f"{request.scope}:{request.target_id}",
            details=receipt,
        )

    logger.info(
        "Finished deletion request %d: %d rows deleted.", request.id, receipt["total_rows"]
    )


def build_receipt(request: DeletionRequest, settings: Settings) -> dict[str, Any]:
    """Return the receipt of a finished request: ids, counts and dates only."""
    counts = merge_counts(empty_counts(), request.counts or {})
    finished = request.finished_at or utcnow()
    expires = finished + timedelta(days=settings.backup_retention_days)
    return {
        "request_id": request.id,
        "scope": request.scope,
        "user_id": request.user_id,
        "target_id": request.target_id,
        "reference": request.reference,
        "requested_by": request.requested_by,
        "requested_at": request.created_at.isoformat(),
        "started_at": request.started_at.isoformat() if request.started_at else None,
        "finished_at": finished.isoformat(),
        "tables": dict(sorted(counts["tables"].items())),
        "total_rows": sum(counts["tables"].values()),
        "files": counts["files"],
        "redis_keys": counts["redis_keys"],
        "mentions_left": counts["mentions_left"],
        "values_redacted": counts["values_redacted"],
        "backup_retention_days": settings.backup_retention_days,
        "backups_expire_at": expires.isoformat(),
    }


def receipt_of(request: DeletionRequest) -> dict[str, Any]:
    """Return the stored receipt of a finished request.

    Raises:
      NotFound: The request has no receipt in the audit log.
    """
    entry = (
        AuditLog.select()
        .where((AuditLog.action == RECEIPT_ACTION) & (AuditLog.user_id == request.user_id))
        .where(AuditLog.target == f"{request.scope}:{request.target_id}")
        .order_by(AuditLog.id.desc())
    )
    for row in entry:
        if row.details.get("request_id") == request.id:
            return row.details

    raise NotFound("deletion receipt", request.id, "The request has not finished.")


def _queue_notice(request: DeletionRequest, receipt: dict[str, Any]) -> int | None:
    """Queue the receipt mail to the requester; return the outbox item id, if any.

    A whole-account deletion is mailed only to ``notify_to`` (the operator's
    address given with the request), because once it finishes no row holds
    the user's address.  A contact or import deletion goes to ``notify_to``
    or, when that is empty, to the user.
    """
    user = None
    recipient = request.notify_to
    if request.scope != "user":
        user = User.get_or_none(User.id == request.user_id)
        if not recipient and user is not None:
            recipient = user.email

    if not recipient:
        return None

    content = MailContent(subject=notice_subject(receipt), text=notice_text(receipt))
    item = add_email(user, f"gdpr-receipt:{request.id}", recipient, content)
    return item.id


def notice_subject(receipt: dict[str, Any]) -> str:
    """Return the subject of the receipt mail."""
    reference = receipt["reference"] or f"request {receipt['request_id']}"
    return f"Wallie deletion receipt ({reference})"


def notice_text(receipt: dict[str, Any]) -> str:
    """Return the plain-text body of the receipt mail."""
    lines = [
        f"Deletion request {receipt['request_id']} ({receipt['scope']} {receipt['target_id']} "
        f"of user {receipt['user_id']}) finished at {receipt['finished_at']}.",
        "",
        f"Rows deleted: {receipt['total_rows']}",
    ]
    lines += [f"  {table}: {count}" for table, count in receipt["tables"].items()]
    lines += [
        f"Media files removed: {receipt['files']['media']}",
        f"Outbox mail files removed: {receipt['files']['outbox']}",
        f"Upload files removed: {receipt['files'].get('uploads', 0)}",
        f"Redis keys removed: {receipt['redis_keys']}",
        f"Mails and notifications kept that still name the contact: {receipt.get('mentions_left', 0)}",
        f"Names and numbers replaced in titles and import statistics: {receipt.get('values_redacted', 0)}",
        "",
        f"Backups keep the deleted data until {receipt['backups_expire_at']} "
        f"({receipt['backup_retention_days']} days).",
    ]
    return "\n".join(lines)


def dry_run_counts(scope: str, user_id: int, target_id: int, settings: Settings) -> dict[str, Any]:
    """Return what a deletion would remove, in the receipt's counts shape; delete nothing.

    Raises:
      ValueError: ``scope`` is not one of :data:`SCOPES`.
    """
    if scope not in SCOPES:
        raise ValueError(f"Unknown deletion scope {scope!r}; use one of {', '.join(SCOPES)}.")

    check_rules()
    if scope == "user":
        return _dry_run_user(user_id, settings)

    return _dry_run_part(scope, user_id, target_id, settings)


def _dry_run_user(user_id: int, settings: Settings) -> dict[str, Any]:
    counts = empty_counts()
    for step in user_steps(user_id):
        counts = merge_counts(counts, _step_counts(step, None, settings))

    # The steps counted the files named by rows; these are the files that
    # only the folder and address sweeps of the user step find.
    user = User.get_or_none(User.id == user_id)
    items = OutboxItem.select(OutboxItem.idempotency_key).where(
        (OutboxItem.user == user_id) & (OutboxItem.kind == "email")
    )
    known_mail = set(external.outbox_file_paths(settings, [row[0] for row in items.tuples()]))
    addressed = external.outbox_files_to(settings, user.email) if user else []
    outbox = sum(1 for path in addressed if path.resolve() not in known_mail)
    attachments = Attachment.select(Attachment.path).where(Attachment.user == user_id)
    known = {external.media_path(settings, row[0]) for row in attachments.tuples()}
    media = sum(1 for path in external.user_media_files(settings, user_id) if path not in known)
    known_uploads = set(_import_files(Import.user == user_id, settings))
    uploads = sum(
        1 for path in external.user_upload_files(settings, user_id) if path not in known_uploads
    )
    redis_keys = external.count_redis_keys(settings, user_id)
    files = {"outbox": outbox, "media": media, "uploads": uploads}
    return merge_counts(counts, {"files": files, "redis_keys": redis_keys})


def _dry_run_part(scope: str, user_id: int, target_id: int, settings: Settings) -> dict[str, Any]:
    if scope == "contact":
        roots = contact_roots(user_id, target_id)
        candidates = contact_conversations(user_id, target_id)
    else:
        roots = import_roots(user_id, target_id)
        candidates = import_conversations(user_id, target_id)

    counts = empty_counts()
    first = cascade_steps(roots, user_id)
    conditions = {step.model: step.condition for step in first}
    for step in first:
        counts = merge_counts(counts, _step_counts(step, None, settings))

    empty = empty_conversations(candidates, excluding=conditions.get(Message))
    for chunk in chunks(empty):
        for step in conversation_steps(user_id, chunk):
            counts = merge_counts(counts, _step_counts(step, conditions.get(step.model), settings))

    if scope == "contact":
        notices = find_contact_notices(user_id, target_id)
        plan = {"notices": _notice_plan(notices)}
        for step in _notice_steps(user_id, plan):
            already = conditions.get(step.model)
            if already is not None:
                # Not ``& ~already``: a NULL foreign key makes that NULL, not true.
                overlap = step.model.select().where(step.condition & already)
                step = Step(step.model, step.condition & step.model.id.not_in(overlap.select(step.model.id)))

            counts = merge_counts(counts, _step_counts(step, None, settings))

        redacted = redact_contact_copies(
            user_id, target_id, contact_conversations(user_id, target_id), apply=False
        )
        counts = merge_counts(
            counts, {"mentions_left": notices.mentions_left, "values_redacted": redacted}
        )

    return counts


def _step_counts(step: Step, already: Any, settings: Settings) -> dict[str, Any]:
    condition = step.condition if already is None else (step.condition & ~already)
    rows = step.model.select().where(condition).count()
    counts: dict[str, Any] = {"tables": {step.table: rows}} if rows else {}
    if step.model is Attachment and rows:
        paths = [row[0] for row in Attachment.select(Attachment.path).where(condition).tuples()]
        counts["files"] = {"media": external.count_media_files(settings, paths)}

    if step.model is OutboxItem and rows:
        query = OutboxItem.select(OutboxItem.idempotency_key).where(condition & (OutboxItem.kind == "email"))
        paths = external.outbox_file_paths(settings, [row[0] for row in query.tuples()])
        counts["files"] = {"outbox": len(paths)}

    if step.model is Import and rows:
        counts["files"] = {"uploads": len(set(_import_files(condition, settings)))}

    return counts


def _import_files(condition: Any, settings: Settings) -> list[Path]:
    """Return the upload and chunk files of the imports matching ``condition``."""
    query = Import.select(Import.id, Import.user, Import.sha256).where(condition)
    return [path for row in query.tuples() for path in external.import_files(settings, *row)]
