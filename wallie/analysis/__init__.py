"""Conversation analysis: reminders, entities, buying signals and lead scores.

Library code only, with no database access. :func:`make_analyzer` picks the
OpenAI analyzer when an API key is set and the offline rules otherwise;
:func:`wallie.analysis.scoring.score_contact` scores a contact from either.
"""

from __future__ import annotations

from decimal import Decimal

from .offline import OfflineAnalyzer
from .openai_analyzer import DEFAULT_MODEL, OpenAIAnalyzer
from .scoring import score_contact
from .types import (
    AnalysisResult,
    Analyzer,
    ContactScore,
    Conversation,
    Entity,
    IntentSignal,
    Message,
    ReminderDraft,
    ScoreReason,
    Usage,
)

__all__ = [
    "DEFAULT_MODEL",
    "AnalysisResult",
    "Analyzer",
    "ContactScore",
    "Conversation",
    "Entity",
    "IntentSignal",
    "Message",
    "OfflineAnalyzer",
    "OpenAIAnalyzer",
    "ReminderDraft",
    "ScoreReason",
    "Usage",
    "make_analyzer",
    "score_contact",
]


def make_analyzer(
    api_key: str | None,
    base_url: str | None = None,
    model: str | None = None,
    *,
    input_price_per_1m: Decimal | None = None,
    output_price_per_1m: Decimal | None = None,
    timeout_s: float | None = None,
) -> Analyzer:
    """Return the OpenAI analyzer when ``api_key`` is set, else the offline one.

    Parameters:
      api_key: The OpenAI API key; ``None`` or an empty string selects the
        offline analyzer.
      base_url: The OpenAI-compatible API address, or ``None`` for the default.
      model: The model name, or ``None`` for :data:`DEFAULT_MODEL`.
      input_price_per_1m: US dollars per 1M prompt tokens, or ``None`` for
        the built-in estimate.
      output_price_per_1m: US dollars per 1M completion tokens, or ``None``
        for the built-in estimate.
      timeout_s: Request timeout in seconds, or ``None`` for the default.

    Raises:
      ConfigurationError: When the model has no known price and none is given.
    """
    if not api_key:
        return OfflineAnalyzer()

    extra = {} if timeout_s is None else {"timeout_s": timeout_s}
    return OpenAIAnalyzer(
        api_key,
        base_url=base_url,
        model=model,
        input_price_per_1m=input_price_per_1m,
        output_price_per_1m=output_price_per_1m,
        **extra,
    )
