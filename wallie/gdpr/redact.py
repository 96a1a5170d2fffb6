"""Copies of an erased contact's name, phone and email kept outside its rows.

Erasing a contact deletes its rows, but a few of the user's own rows keep
a copy of how the contact was shown.  The title of a one-to-one WhatsApp
conversation is the contact's name or number, and an import's statistics
list its participants.  Those rows stay, because they belong to the user's
other data, so the copies inside them are replaced by :data:`ERASED`.
"""

from __future__ import annotations

from typing import Any

from ..db.models import Contact, Conversation, Import
from ..logging import get_logger

logger = get_logger(__name__)

#: Replacement text for an erased contact's name, phone or email.
ERASED = "[erased]"


def redact_contact_copies(
    user_id: int, contact_id: int, conversation_ids: list[int], *, apply: bool = True
) -> int:
    """Replace copies of the contact's identifiers in titles and import statistics.

    Call it before the contact row is deleted, in the transaction that plans
    the deletion, so a resumed deletion does not need the contact again.
    With ``apply`` false, only count them (for a dry run).

    Returns:
      How many values were, or would be, replaced.
    """
    contact = Contact.get_or_none((Contact.id == contact_id) & (Contact.user == user_id))
    if contact is None:
        return 0

    identifiers = {value for value in (contact.name, contact.phone, contact.email) if value}
    if not identifiers:
        return 0

    replaced = 0
    if conversation_ids:
        titles = Conversation.id.in_(conversation_ids) & Conversation.title.in_(list(identifiers))
        if apply:
            replaced += Conversation.update(title=ERASED).where(titles).execute()
        else:
            replaced += Conversation.select().where(titles).count()

    for row in Import.select().where(Import.user == user_id):
        stats, count = _replace(row.stats, identifiers)
        count += _drop_sender_keys(stats, contact_id)
        if count and apply:
            Import.update(stats=stats).where(Import.id == row.id).execute()
        replaced += count

    if not apply:
        return replaced

    logger.info(
        "Replaced %d copies of contact %s's identifiers for user %s.", replaced, contact_id, user_id
    )
    return replaced


def _drop_sender_keys(stats: dict[str, Any], contact_id: int) -> int:
    """Drop the import plan's sender keys ("name, phone") that map to the contact."""
    senders = (stats.get("plan") or {}).get("contacts")
    if not isinstance(senders, dict):
        return 0

    keys = [key for key, value in senders.items() if value == contact_id]
    for key in keys:
        del senders[key]

    return len(keys)


def _replace(value: Any, identifiers: set[str]) -> tuple[Any, int]:
    """Return ``value`` with every string equal to an identifier replaced, and the count."""
    if isinstance(value, str):
        return (ERASED, 1) if value in identifiers else (value, 0)

    if isinstance(value, list):
        pairs = [_replace(item, identifiers) for item in value]
        return [item for item, _ in pairs], sum(count for _, count in pairs)

    if isinstance(value, dict):
        pairs = {key: _replace(item, identifiers) for key, item in value.items()}
        return {key: item for key, (item, _) in pairs.items()}, sum(c for _, c in pairs.values())

    return value, 0
