"""Analysis jobs: choose the analyzer, apply the error policy, record usage.

The actors in ``actors/analysis.py`` only declare their options and call
:func:`run_analysis` or :func:`run_scoring`.

Error policy of :func:`run_analysis`, per batch of new messages:

* ``ProviderRateLimited`` raises :class:`dramatiq.Retry` with the provider's
  wait as its delay. Batches stored before it stay stored, so the retry goes
  on from the first unanalysed message.
* ``ProviderQuotaExhausted``, ``ProviderAuthError`` and
  ``ProviderRequestFailed`` cannot succeed on a retry. With ``engine="auto"``
  the run falls back to the offline rules for the rest of its batches, so the
  user still gets reminders. The fallback is noted in run history, and the
  operator (``WALLIE_MAIL_FROM``) gets one mail per error kind and UTC day
  through the outbox. With ``engine="openai"`` the error propagates, and the
  actor lists it in ``throws``, so the job fails without a retry.
* ``InvalidModelOutput`` gets one more call; a second invalid reply makes
  that batch fall back to the offline rules, noted in run history.
* Any other error (``ProviderUnavailable``, a database error) propagates and
  the actor retries with backoff.

Messages analysed offline are marked analysed like the others: a later
run with a working key does not analyse them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from ..db.fields import utcnow
from ..db.models import OutboxItem
from ..errors import ConfigurationError, InvalidArguments
from ..logging import get_logger
from ..middleware.run_history import note
from ..notify import MailContent, add_email
from ..settings import Settings
from ..usage import record_usage
from . import make_analyzer
from .errors import AnalysisError, InvalidModelOutput, ProviderRateLimited
from .offline import OfflineAnalyzer
from .service import AnalysisOutcome, ScoredContact, analyze_conversation, score_conversation
from .types import AnalysisResult, Analyzer, Conversation, Usage

logger = get_logger(__name__)

#: Values of the analysis actor's ``engine`` argument.
ENGINES = ("auto", "openai", "offline")

#: Name of the analysis actor, in usage records.
ANALYSIS_ACTOR = "conversation_analysis"


@dataclass
class _Run:
    """State of one analysis run across its batches."""

    engine: str
    analyzer: Analyzer
    settings: Settings
    user_id: int
    message_id: str
    offline: OfflineAnalyzer
    fell_back: bool = False
    outbox_ids: tuple[int, ...] = ()


def pick_analyzer(engine: str, settings: Settings) -> Analyzer:
    """Return the analyzer for ``engine``.

    Raises:
      InvalidArguments: ``engine`` is not one of :data:`ENGINES`.
      ConfigurationError: ``engine`` is ``openai`` without ``OPENAI_API_KEY``,
        or ``OPENAI_MODEL`` has no known price.
    """
    if engine not in ENGINES:
        raise InvalidArguments(
            ANALYSIS_ACTOR,
            f"engine must be one of {', '.join(ENGINES)} (got {engine!r}).",
        )

    if engine == "offline":
        return OfflineAnalyzer()

    if engine == "openai" and not settings.openai_api_key:
        raise ConfigurationError(
            "OPENAI_API_KEY",
            "engine='openai' needs OPENAI_API_KEY; set it or use engine='auto'.",
        )

    return make_analyzer(
        settings.openai_api_key, settings.openai_base_url, settings.openai_model
    )


def run_analysis(
    user_id: int, conversation_id: int, engine: str, settings: Settings
) -> AnalysisOutcome:
    """Analyse a conversation's new messages with the error policy above.

    Parameters:
      user_id: The owner of the conversation.
      conversation_id: The conversation.
      engine: ``auto`` (OpenAI when a key is set), ``openai`` or ``offline``.
      settings: The settings of the process.

    Returns:
      What was analysed. ``outcome.notes`` explains why a batch went offline.

    Raises:
      dramatiq.Retry: The provider rate-limited a call; its delay is the
        provider's wait.
      AnalysisError: A permanent provider error with ``engine="openai"``, or
        a transient one.
      NotFound: The conversation is not the user's.
    """
    message: Any = CurrentMessage.get_current_message()
    run = _Run(
        engine=engine,
        analyzer=pick_analyzer(engine, settings),
        settings=settings,
        user_id=user_id,
        message_id=message.message_id if message is not None else "",
        offline=OfflineAnalyzer(),
    )

    def analyze_batch(conversation: Conversation, outcome: AnalysisOutcome) -> AnalysisResult:
        return _analyze_batch(run, conversation, outcome)

    outcome = analyze_conversation(user_id, conversation_id, analyze_batch)
    outcome.outbox_ids = list(run.outbox_ids)
    if message is not None and outcome.notes:
        earlier = message.options.get("wallie_note")
        note(message, " ".join([earlier, *outcome.notes] if earlier else outcome.notes))

    return outcome


def _analyze_batch(
    run: _Run, conversation: Conversation, outcome: AnalysisOutcome
) -> AnalysisResult:
    if run.fell_back or run.analyzer.provider == "offline":
        return run.offline.analyze(conversation)

    try:
        result = _call_twice_on_invalid(run.analyzer, conversation)
    except InvalidModelOutput as error:
        logger.warning(
            "The model's reply for conversation %s was invalid twice (%s), so %d "
            "messages were analysed offline.",
            conversation.conversation_id,
            error.path or "whole reply",
            len(conversation.messages),
        )
        outcome.notes.append(
            f"The model's reply was invalid twice; {len(conversation.messages)} "
            "messages were analysed with the offline rules."
        )
        return run.offline.analyze(conversation)
    except ProviderRateLimited as error:
        logger.info(
            "Analysis of conversation %s was rate-limited, so it retries in %d ms.",
            conversation.conversation_id,
            error.retry_after_ms,
        )
        raise dramatiq.Retry(str(error), delay=error.retry_after_ms) from error
    except AnalysisError as error:
        if not error.permanent or run.engine == "openai":
            raise

        return _fall_back(run, conversation, outcome, error)

    _record(run, result.usage)
    outcome.usage.append(result.usage)
    return result


def _call_twice_on_invalid(analyzer: Analyzer, conversation: Conversation) -> AnalysisResult:
    try:
        return analyzer.analyze(conversation)
    except InvalidModelOutput as error:
        logger.info(
            "The model's reply for conversation %s was invalid (%s); asking once more.",
            conversation.conversation_id,
            error.path or "whole reply",
        )

    return analyzer.analyze(conversation)


def _fall_back(
    run: _Run, conversation: Conversation, outcome: AnalysisOutcome, error: AnalysisError
) -> AnalysisResult:
    run.fell_back = True
    item = alert_operator(error, run.settings)
    if item.status == "pending":
        run.outbox_ids = (*run.outbox_ids, item.id)

    logger.warning(
        "OpenAI rejected the analysis of conversation %s for user %s (%s), so it "
        "goes on with the offline rules.",
        conversation.conversation_id,
        run.user_id,
        type(error).__name__,
    )
    outcome.notes.append(
        f"Degraded: OpenAI rejected the call ({type(error).__name__}), so the "
        "offline rules analysed the messages; the operator is told once a day."
    )
    return run.offline.analyze(conversation)


def alert_operator(error: AnalysisError, settings: Settings) -> OutboxItem:
    """Queue a mail to the operator about a permanent provider error, once a day.

    The outbox key names the error kind and the UTC day, so every job that
    meets the same error that day finds the same item.

    Returns:
      The stored item, new or already queued (check its status).
    """
    kind = type(error).__name__
    day = utcnow().date().isoformat()
    text = (
        f"Conversation analysis could not use OpenAI on {day}: {error}\n\n"
        "Wallie analyses conversations with its offline rules until OpenAI accepts "
        "the calls again. Check OPENAI_API_KEY, OPENAI_MODEL and the account's "
        "billing, then restart the workers.\n\n"
        "This mail is sent once a day for each kind of error.\n"
    )
    content = MailContent(subject=f"Wallie: OpenAI analysis is failing ({kind})", text=text)
    return add_email(None, f"analysis-provider:{kind}:{day}", settings.mail_from, content)


def _record(run: _Run, usage: Usage) -> None:
    if usage.provider == "offline":
        return

    record_usage(
        user_id=run.user_id,
        provider=usage.provider,
        actor=ANALYSIS_ACTOR,
        operation="analyze",
        message_id=run.message_id,
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        cost_usd=usage.cost_usd,
    )


def run_scoring(
    user_id: int, conversation_id: int, settings: Settings
) -> list[ScoredContact]:
    """Score the conversation's contacts against ``WALLIE_HOT_LEAD_THRESHOLD``.

    Returns:
      The new scores; those with ``crossed`` set need a hot-lead notice.
    """
    return score_conversation(user_id, conversation_id, settings.hot_lead_threshold)
