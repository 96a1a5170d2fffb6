"""Mail sync jobs: fan-out, per-mailbox lock, sync, and hand-off of results.

The actors in ``actors/mail.py`` only declare their options and call
:func:`plan_fan_out` or :func:`run_sync_job`.

* A mailbox syncs in one job at a time. The job takes the lock
  ``mailbox-sync:user:{user_id}:{id}`` (in Redis when ``REDIS_URL`` is set, in-process
  otherwise). A job that finds the lock held is skipped: run history records it
  as ``skipped`` with the reason, and the next periodic run syncs the mailbox.
* A rate limit raises :class:`dramatiq.Retry` with the provider's hinted wait as
  its delay, so the Retries middleware sends the same message again after that
  wait rather than after its own backoff. Those retries count against the
  actor's ``max_retries``.
* A refresh token that the provider rejects for good marks the mailbox
  ``needs_reconnect``, queues one notification and returns without raising, so
  the job is not retried. Later jobs skip the mailbox until the user connects it
  again.
* Conversations with new messages are sent to the ``conversation_analysis``
  actor, with the mailbox owner's ``user_id``, when the broker declares it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage, SkipMessage

from wallie.db.models import Mailbox
from wallie.locks import exclusive
from wallie.logging import get_logger
from wallie.middleware.run_history import set_outcome
from wallie.settings import Settings

from .errors import (
    MailProviderError,
    ProviderRateLimited,
    ProviderRequestFailed,
    TokenDecryptionFailed,
    TokenKeyMissing,
    TokenRevoked,
)
from .mailboxes import (
    active_mailbox_ids,
    mark_needs_reconnect,
    record_sync_failure,
    record_sync_success,
)
from .sync import SyncResult, sync_gmail, sync_outlook

logger = get_logger(__name__)

#: Time limit of one mailbox sync job, in milliseconds. A first sync that runs
#: longer is stopped and retried, and goes on from the messages it stored.
SYNC_TIME_LIMIT_MS = 10 * 60 * 1000

#: Lifetime of a mailbox lock in Redis, in milliseconds: longer than the time
#: limit, so the lock outlives a job that the TimeLimit middleware stops, and
#: expires after a worker that died without releasing it.
LOCK_TTL_MS = SYNC_TIME_LIMIT_MS + 60 * 1000

#: Time over which the periodic fan-out spreads its messages, in milliseconds,
#: so all mailboxes do not hit the provider and the database at once.
FAN_OUT_SPREAD_MS = 5 * 60 * 1000

#: Name of the analysis actor that receives conversations with new messages.
ANALYSIS_ACTOR = "conversation_analysis"

#: Errors that a retry of the same job cannot fix. Actors list them in
#: ``throws``, so Dramatiq fails the message without retrying.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    TokenKeyMissing,
    TokenDecryptionFailed,
    ProviderRequestFailed,
)

Syncer = Callable[..., SyncResult]

#: The sync function of each provider. Tests replace entries to aim a provider
#: at a local server.
SYNCERS: dict[str, Syncer] = {"gmail": sync_gmail, "outlook": sync_outlook}


@dataclass(frozen=True)
class JobOutcome:
    """Outcome of one mailbox job.

    Attributes:
      mailbox_id: The mailbox.
      status: ``synced``, ``skipped`` or ``needs_reconnect``.
      reason: Why it was skipped or needs a reconnect; empty when synced.
      result: The sync result when synced.
      notification_id: The outbox item that requests a reconnect from the user.
      analysis_sent: Conversations sent to analysis.
    """

    mailbox_id: int
    status: str
    reason: str = ""
    result: SyncResult | None = None
    notification_id: int | None = None
    analysis_sent: int = 0


def stagger_delays(count: int, spread_ms: int) -> list[int]:
    """Return ``count`` delays spread evenly from 0 to below ``spread_ms``."""
    if count <= 0:
        return []

    return [index * spread_ms // count for index in range(count)]


def plan_fan_out(provider: str, settings: Settings) -> list[tuple[int, int | None]]:
    """Return each active mailbox of ``provider`` with the delay of its job.

    Parameters:
      provider: ``gmail`` or ``outlook``.
      settings: There are no delays in the embedded default, where jobs run in
        the calling process and a delay would only make ``wallie-cli`` wait.

    Returns:
      Pairs of mailbox id and delay in milliseconds. The delay is ``None`` for a
      job to send now, because Dramatiq's brokers route even a delay of 0
      through the delay queue.
    """
    ids = active_mailbox_ids(provider)
    spread_ms = 0 if settings.embedded else FAN_OUT_SPREAD_MS
    delays = [delay or None for delay in stagger_delays(len(ids), spread_ms)]
    plan = list(zip(ids, delays, strict=True))
    logger.info("Fanning out %d %s mailbox syncs.", len(plan), provider)
    return plan


def run_sync_job(
    provider: str,
    mailbox_id: int,
    settings: Settings,
    broker: dramatiq.Broker,
) -> JobOutcome:
    """Sync one mailbox under its lock and hand the results on.

    Parameters:
      provider: ``gmail`` or ``outlook``.
      mailbox_id: The mailbox to sync.
      settings: The settings of the process.
      broker: The broker to send analysis and outbox messages on.

    Returns:
      What the job did.

    Raises:
      SkipMessage: Inside a worker, when the mailbox is not active or its lock
        is held; the run is recorded as ``skipped`` with the reason.
      dramatiq.Retry: When the provider rate-limited the sync, with its hinted
        wait as the delay.
      MailProviderError: When the sync failed otherwise; the mailbox keeps the
        error as ``last_error``.
    """
    mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id)
    if mailbox is None:
        return _skip(mailbox_id, f"Mailbox {mailbox_id} does not exist.")

    if mailbox.state != "active":
        return _skip(mailbox_id, f"Mailbox {mailbox_id} is {mailbox.state}.")

    with exclusive(settings, mailbox_lock_key(mailbox), LOCK_TTL_MS) as acquired:
        if not acquired:
            return _skip(
                mailbox_id, f"Another job is syncing mailbox {mailbox_id} already."
            )

        outcome = _sync_locked(provider, mailbox_id, settings, broker)

    return outcome


def _sync_locked(
    provider: str, mailbox_id: int, settings: Settings, broker: dramatiq.Broker
) -> JobOutcome:
    try:
        result = SYNCERS[provider](mailbox_id, settings=settings)
    except TokenRevoked as error:
        return _needs_reconnect(mailbox_id, error, broker)
    except ProviderRateLimited as error:
        record_sync_failure(mailbox_id, error)
        logger.info(
            "Sync of mailbox %s was rate-limited, so it retries in %d ms.",
            mailbox_id,
            error.retry_after_ms,
        )
        raise dramatiq.Retry(str(error), delay=error.retry_after_ms) from error
    except (MailProviderError, TokenKeyMissing, TokenDecryptionFailed) as error:
        record_sync_failure(mailbox_id, error)
        raise

    record_sync_success(mailbox_id)
    sent = send_to_analysis(broker, result.conversation_ids, mailbox_id)
    return JobOutcome(mailbox_id, "synced", result=result, analysis_sent=sent)


def _needs_reconnect(
    mailbox_id: int, error: TokenRevoked, broker: dramatiq.Broker
) -> JobOutcome:
    item = mark_needs_reconnect(mailbox_id, error)
    if item is not None:
        _send_if_declared(broker, "deliver_outbox", [item.id])

    return JobOutcome(
        mailbox_id,
        "needs_reconnect",
        reason=error.reason,
        notification_id=item.id if item is not None else None,
    )


def mailbox_lock_key(mailbox: Mailbox) -> str:
    """Return the name of the lock that one sync of ``mailbox`` holds.

    It contains ``:user:{user_id}:`` like every per-user key, so deleting
    the account finds a lock left by a killed job.
    """
    return f"mailbox-sync:user:{mailbox.user_id}:{mailbox.id}"


def _skip(mailbox_id: int, reason: str) -> JobOutcome:
    """Skip the job: in a worker, record the reason and raise ``SkipMessage``."""
    logger.info("Skipped the sync of mailbox %s: %s", mailbox_id, reason)
    message: Any = CurrentMessage.get_current_message()
    if message is not None:
        set_outcome(message, "skipped", reason)
        raise SkipMessage(reason)

    return JobOutcome(mailbox_id, "skipped", reason=reason)


def send_to_analysis(
    broker: dramatiq.Broker, conversation_ids: Sequence[int], mailbox_id: int
) -> int:
    """Send each conversation to the analysis actor, when the broker declares it.

    Returns:
      The number of messages sent: 0 when the actor is not declared.
    """
    if not conversation_ids:
        return 0

    try:
        actor = broker.get_actor(ANALYSIS_ACTOR)
    except dramatiq.ActorNotFound:
        logger.info(
            "No %s actor is declared, so %d conversations of mailbox %s were not "
            "sent to analysis.",
            ANALYSIS_ACTOR,
            len(conversation_ids),
            mailbox_id,
        )
        return 0

    user_id = Mailbox.get_by_id(mailbox_id).user_id
    for conversation_id in conversation_ids:
        actor.send(user_id=user_id, conversation_id=conversation_id)

    return len(conversation_ids)


def _send_if_declared(
    broker: dramatiq.Broker, actor_name: str, arguments: Sequence[int]
) -> bool:
    try:
        actor = broker.get_actor(actor_name)
    except dramatiq.ActorNotFound:
        return False

    for argument in arguments:
        actor.send(argument)

    return True
