"""Hot-lead notices: in the app, by mail, and to the CRM webhook, once per crossing.

A contact becomes hot when a scoring crosses ``WALLIE_HOT_LEAD_THRESHOLD``
upward or finds a strong intent (see :mod:`wallie.analysis.service`). The
notices of one crossing share the outbox key ``hot-lead:{contact}:{score row}``
(the mail and the webhook add ``:email`` and ``:webhook``), so a retried job
finds the items it queued and never sends twice. A contact that stays hot gets
no new crossing; one that drops below and crosses again gets a new one.
"""

from __future__ import annotations

from typing import Any

from ..db.models import Contact, Conversation, LeadScore, OutboxItem, User
from ..errors import NotFound
from ..logging import get_logger
from ..notify import add_email, add_notification, add_webhook
from ..reports.render import render_mail
from ..settings import Settings

logger = get_logger(__name__)

#: Reasons shown in a notice, largest contribution first.
SHOWN_REASONS = 5

#: Kind of the in-app notification and type of the webhook event.
EVENT_KIND = "hot_lead"


def hot_lead_key(contact_id: int, lead_score_id: int) -> str:
    """Return the outbox key of a crossing's in-app notification."""
    return f"hot-lead:{contact_id}:{lead_score_id}"


def queue_hot_lead(
    user_id: int, contact_id: int, lead_score_id: int, settings: Settings
) -> list[OutboxItem]:
    """Queue the notices of one crossing: notification, mail, and webhook if set.

    Parameters:
      user_id: The user to tell.
      contact_id: The hot contact.
      lead_score_id: The score row that crossed the threshold.
      settings: ``WALLIE_WEBHOOK_URL`` and the threshold.

    Returns:
      The stored items, new or queued by an earlier attempt.

    Raises:
      NotFound: The score is not this user's score of this contact.
    """
    row = LeadScore.get_or_none(
        (LeadScore.id == lead_score_id)
        & (LeadScore.user == user_id)
        & (LeadScore.contact == contact_id)
    )
    if row is None:
        raise NotFound(
            "lead score",
            lead_score_id,
            f"It must be a score of contact {contact_id} of user {user_id}.",
        )

    user = User.get_by_id(user_id)
    contact = Contact.get_by_id(contact_id)
    conversation = (
        Conversation.get_or_none(Conversation.id == row.conversation_id)
        if row.conversation_id is not None
        else None
    )
    key = hot_lead_key(contact_id, lead_score_id)
    facts = _facts(user, contact, row, conversation, settings)
    items = [
        add_notification(
            user, key, EVENT_KIND, facts["title"], facts["summary"], _data(row, contact)
        ),
        add_email(user, f"{key}:email", user.email, _mail(facts)),
    ]
    if settings.webhook_url:
        items.append(
            add_webhook(user, f"{key}:webhook", settings.webhook_url, _event(key, user, contact, row))
        )

    logger.info(
        "Queued %d hot-lead notices for contact %s of user %s (lead score %s).",
        len(items),
        contact_id,
        user_id,
        lead_score_id,
    )
    return items


def _name(contact: Contact) -> str:
    return contact.name or contact.email or contact.phone or f"Contact {contact.id}"


def _reasons(row: LeadScore) -> list[dict[str, Any]]:
    return list(row.reasons or [])[:SHOWN_REASONS]


def _facts(
    user: User,
    contact: Contact,
    row: LeadScore,
    conversation: Conversation | None,
    settings: Settings,
) -> dict[str, Any]:
    name = _name(contact)
    reasons = _reasons(row)
    summary = f"Lead score {row.score}/100."
    if reasons:
        summary += " " + " ".join(str(reason.get("text", "")) for reason in reasons)

    return {
        "title": f"{name} looks ready to buy",
        "summary": summary,
        "user_name": user.name,
        "contact_name": name,
        "company": contact.company,
        "score": row.score,
        "threshold": settings.hot_lead_threshold,
        "reasons": reasons,
        "conversation_title": conversation.title if conversation is not None else "",
        "computed_at": row.computed_at,
        "time_zone": user.time_zone or "UTC",
    }


def _data(row: LeadScore, contact: Contact) -> dict[str, Any]:
    return {
        "contact_id": contact.id,
        "lead_score_id": row.id,
        "conversation_id": row.conversation_id,
        "score": row.score,
        "reasons": [reason.get("code") for reason in _reasons(row)],
    }


def _mail(facts: dict[str, Any]) -> Any:
    subject = f"Hot lead: {facts['contact_name']} ({facts['score']}/100)"
    return render_mail("hot_lead", subject, facts)


def _event(key: str, user: User, contact: Contact, row: LeadScore) -> dict[str, Any]:
    return {
        "type": EVENT_KIND,
        "id": key,
        "user_id": user.id,
        "contact": {
            "id": contact.id,
            "name": contact.name,
            "company": contact.company,
            "email": contact.email,
            "phone": contact.phone,
        },
        "lead_score_id": row.id,
        "conversation_id": row.conversation_id,
        "score": row.score,
        "reasons": list(row.reasons or []),
        "computed_at": row.computed_at.isoformat(),
    }
