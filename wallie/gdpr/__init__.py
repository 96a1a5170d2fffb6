"""GDPR erasure and export: a whole account, one contact, one import.

Deletion (:mod:`.deletion`) walks :data:`~wallie.db.models.MODELS` through
the rules of :mod:`.rules`, so a table added later is either covered by its
``user`` foreign key or makes :func:`~wallie.gdpr.rules.check_rules` fail.
It runs in batches, resumes after a crash and ends with a receipt in the
audit log that holds ids, counts and dates only.

Rules every other part of Wallie follows so that deletion finds its data:

- Every Redis key that belongs to one user contains ``:user:{user_id}:``.
  Account deletion removes them with ``SCAN MATCH *:user:{user_id}:*``.
- A user's media files live under ``media/users/{user_id}/`` and
  :attr:`~wallie.db.models.Attachment.path` is relative to the media folder.
- A job that works for a user takes a ``user_id`` argument; the
  :class:`~wallie.middleware.deleted_users.DeletedUsers` middleware skips
  it once the user's account deletion has started.

Receipt notices: a whole-account deletion mails its receipt only to the
address the operator gives with the request, because when it finishes no
row holds the user's own address; a contact or import deletion mails the
user unless the operator gives an address.
"""

from __future__ import annotations

from .deletion import (
    DEFAULT_BATCH_SIZE,
    SCOPES,
    DeletionResult,
    dry_run_counts,
    request_deletion,
    run_deletion,
)
from .errors import DeletionInProgress, PersonalDataInReceipt, UnclassifiedModel
from .external import user_key_part, user_key_pattern, user_media_dir
from .rules import check_rules, rule_for

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SCOPES",
    "DeletionInProgress",
    "DeletionResult",
    "PersonalDataInReceipt",
    "UnclassifiedModel",
    "check_rules",
    "dry_run_counts",
    "request_deletion",
    "rule_for",
    "run_deletion",
    "user_key_part",
    "user_key_pattern",
    "user_media_dir",
]
