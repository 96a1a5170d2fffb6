"""conversationAnalysis, scoringAnalysis and hotLeadNotification.

New messages of a conversation are analysed (reminders, entities, buying
signals), then the conversation's contacts are scored, debounced per
conversation, and a contact that becomes hot is notified once per crossing.
The logic lives in :mod:`wallie.analysis.jobs` and
:mod:`wallie.analysis.hot_leads`.
"""

from __future__ import annotations

import dramatiq

from wallie.analysis.errors import (
    ProviderAuthError,
    ProviderQuotaExhausted,
    ProviderRequestFailed,
)
from wallie.analysis.hot_leads import queue_hot_lead
from wallie.analysis.jobs import run_analysis, run_scoring
from wallie.errors import ConfigurationError, InvalidArguments, NotFound
from wallie.middleware.debounce import DebounceOptions
from wallie.middleware.glass_ceiling import ActorLimits
from wallie.settings import get_settings

from .outbox import deliver_outbox

#: Quiet period of the scoring debounce, in milliseconds (10 minutes).
SCORING_QUIET_MS = 600_000

#: Longest wait of the scoring debounce from a burst's first send, in
#: milliseconds (1 hour).
SCORING_MAX_WAIT_MS = 3_600_000

#: Errors that no retry can fix: the job fails at once.
PERMANENT_ERRORS = (
    ProviderQuotaExhausted,
    ProviderAuthError,
    ProviderRequestFailed,
    ConfigurationError,
    InvalidArguments,
    NotFound,
)


@dramatiq.actor(
    queue_name="analysis",
    max_retries=5,
    min_backoff=15_000,
    max_backoff=900_000,
    time_limit=900_000,
    throws=PERMANENT_ERRORS,
    limits=ActorLimits(
        "openai",
        per="user",
        units={"tokens": 4000},
        cap="ai_analyses_per_day",
        paid=True,
        degrade={"engine": "offline"},
    ),
)
def conversation_analysis(user_id: int, conversation_id: int, engine: str = "auto") -> None:
    """Analyse the conversation's unanalysed messages, then send its scoring.

    ``engine`` is ``auto`` (OpenAI when ``OPENAI_API_KEY`` is set, else the
    offline rules), ``openai`` or ``offline``; the glass ceiling switches it
    to ``offline`` over a cap or the cost ceiling.
    """
    outcome = run_analysis(user_id, conversation_id, engine, get_settings())
    for item_id in outcome.outbox_ids:
        deliver_outbox.send(item_id)

    if outcome.analyzed:
        scoring_analysis.send(user_id=user_id, conversation_id=conversation_id)


@dramatiq.actor(
    queue_name="analysis",
    max_retries=5,
    min_backoff=10_000,
    throws=(NotFound,),
    debounce=DebounceOptions("conversation_id", SCORING_QUIET_MS, SCORING_MAX_WAIT_MS),
)
def scoring_analysis(user_id: int, conversation_id: int) -> None:
    """Score the conversation's contacts; notify each one that became hot."""
    scored = run_scoring(user_id, conversation_id, get_settings())
    for contact in scored:
        if contact.crossed:
            hot_lead_notification.send(
                user_id=user_id,
                contact_id=contact.contact_id,
                lead_score_id=contact.lead_score_id,
            )


@dramatiq.actor(queue_name="notify", max_retries=8, min_backoff=5_000, throws=(NotFound,))
def hot_lead_notification(user_id: int, contact_id: int, lead_score_id: int) -> None:
    """Queue and deliver the notices of one hot-lead crossing, once."""
    items = queue_hot_lead(user_id, contact_id, lead_score_id, get_settings())
    for item in items:
        if item.status == "pending":
            deliver_outbox.send(item.id)
