"""Wallie's Dramatiq actors, one module per worker.

Importing this package installs the broker of :mod:`wallie.broker` (Redis
when ``REDIS_URL`` is set, in-process otherwise) and declares every actor
on it, which is what ``dramatiq actors`` and ``periodiq actors`` rely on.
The web app imports it too, to call ``.send()``.
"""

from __future__ import annotations

from wallie.broker import setup_broker

#: The broker every actor is declared on; ``dramatiq actors`` finds it here.
broker = setup_broker()

from .outbox import deliver_outbox, outbox_sweep  # noqa: E402 - needs the broker
from .safety import safety_limiter  # noqa: E402 - needs the broker
from .gdpr import knowledge_delete  # noqa: E402 - needs the broker
from .churn import client_churn_detection  # noqa: E402 - needs the broker
from .reminders import reminder_check  # noqa: E402 - needs the broker
from .reports import weekly_report  # noqa: E402 - needs the broker
from .schedule import local_time_tick  # noqa: E402 - needs the broker
from .summary import daily_summary  # noqa: E402 - needs the broker
from .analysis import (  # noqa: E402 - needs the broker
    conversation_analysis,
    hot_lead_notification,
    scoring_analysis,
)
from .knowledge import knowledge_batch_import, knowledge_import  # noqa: E402 - needs the broker
from .audio import audio_received  # noqa: E402 - needs the broker
from .mail import (  # noqa: E402 - needs the broker
    gmail_sync,
    gmail_sync_single_user,
    outlook_sync,
    outlook_sync_mailbox,
)

__all__ = [
    "broker",
    # Outbox
    "deliver_outbox",
    "outbox_sweep",
    # Limits and costs
    "safety_limiter",
    # GDPR
    "knowledge_delete",
    # Schedules and reports
    "client_churn_detection",
    "daily_summary",
    "local_time_tick",
    "reminder_check",
    "weekly_report",
    # Analysis and leads
    "conversation_analysis",
    "hot_lead_notification",
    "scoring_analysis",
    # Imports
    "knowledge_batch_import",
    "knowledge_import",
    # Voice notes
    "audio_received",
    # Mail
    "gmail_sync",
    "gmail_sync_single_user",
    "outlook_sync",
    "outlook_sync_mailbox",
]
