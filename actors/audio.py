"""audioReceived: transcribe a stored voice note, then analyse its conversation.

The WhatsApp importer sends one message per voice note it stores, and the
app sends one when a voice note arrives.  The logic lives in
:mod:`wallie.audio.jobs`.
"""

from __future__ import annotations

import dramatiq

from wallie.audio.errors import InvalidApiKey, QuotaExhausted, RequestRejected
from wallie.audio.jobs import run_transcription
from wallie.errors import ConfigurationError, InvalidArguments, NotFound
from wallie.middleware.glass_ceiling import ActorLimits
from wallie.settings import get_settings

from .analysis import conversation_analysis

#: Errors that no retry can fix: the job fails at once.  Files that cannot be
#: transcribed are not among them, because the job marks those attachments
#: ``failed`` and ends without an error.
PERMANENT_ERRORS = (
    QuotaExhausted,
    InvalidApiKey,
    RequestRejected,
    ConfigurationError,
    InvalidArguments,
    NotFound,
)


@dramatiq.actor(
    queue_name="audio",
    max_retries=5,
    min_backoff=15_000,
    max_backoff=900_000,
    # Two hours: the offline engine ran at a real-time factor of 0.83 in the
    # benchmark, and the default duration limit is one hour of audio.
    time_limit=7_200_000,
    throws=PERMANENT_ERRORS,
    limits=ActorLimits(
        "openai",
        per="user",
        # A long file may take several requests; the rate window counts one.
        units={"requests": 1, "tokens": 0},
        cap="transcription_minutes_per_month",
        paid=True,
        degrade={"engine": "offline"},
    ),
)
def audio_received(user_id: int, attachment_id: int, engine: str = "auto") -> None:
    """Transcribe the attachment and send its conversation to analysis.

    ``engine`` is ``auto``, ``openai`` or ``offline``.  ``auto`` follows
    ``WALLIE_TRANSCRIPTION_ENGINE``, whose own ``auto`` means OpenAI when
    ``OPENAI_API_KEY`` is set.  The glass ceiling switches the engine to
    ``offline`` over a cap or the cost ceiling.
    """
    outcome = run_transcription(user_id, attachment_id, engine, get_settings())
    if outcome.needs_analysis:
        conversation_analysis.send(
            user_id=user_id, conversation_id=outcome.conversation_id
        )
