"""Check a model's JSON reply and turn it into an :class:`AnalysisResult`.

A reply that is not JSON, lacks a field or has a value of the wrong type
raises :class:`InvalidModelOutput` naming the field. A finding that cites a
message id outside the batch is dropped with a warning instead, because one
stray id should not cost the whole batch. Numbers are clamped: scores to
0..100, strengths to 0..1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from wallie.logging import get_logger

from .errors import InvalidModelOutput
from .types import (
    ENTITY_KINDS,
    SIGNAL_KINDS,
    AnalysisResult,
    ContactScore,
    Conversation,
    Entity,
    IntentSignal,
    Party,
    ReminderDraft,
    ReminderKind,
    ScoreReason,
    Usage,
)

logger = get_logger(__name__)

_T = TypeVar("_T")

_PARTIES = ("user", "contact")
_REMINDER_KINDS = ("commitment", "request")


def _field(item: dict[str, Any], key: str, kind: type[_T], path: str) -> _T:
    if key not in item:
        raise InvalidModelOutput(f"The reply lacks {path}.{key}.", path=f"{path}.{key}")

    value = item[key]
    # bool is a subclass of int, but a JSON true is no message id or score.
    if isinstance(value, bool) and kind is not bool:
        value = None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise InvalidModelOutput(
            f"{path}.{key} is {type(value).__name__}, expected {kind.__name__}.",
            path=f"{path}.{key}",
        )

    return value


def _choice(item: dict[str, Any], key: str, allowed: tuple[str, ...], path: str) -> str:
    value = _field(item, key, str, path)
    if value not in allowed:
        raise InvalidModelOutput(
            f"{path}.{key} is {value!r}, expected one of {', '.join(allowed)}.",
            path=f"{path}.{key}",
        )

    return value


def _items(reply: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = _field(reply, key, list, "reply")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidModelOutput(
                f"{key}[{index}] is not an object.", path=f"{key}[{index}]"
            )

    return items


def _due_at(text: str, conversation: Conversation, path: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidModelOutput(
            f"{path} is not an ISO 8601 datetime: {text!r}.", path=path
        ) from None

    if moment.tzinfo is None:
        # The prompt asks for an offset; a reply without one means local time.
        moment = moment.replace(tzinfo=conversation.zone)

    return moment.astimezone(UTC)


def _known(message_id: int, allowed: frozenset[int], path: str) -> bool:
    if message_id in allowed:
        return True

    logger.warning(
        "Dropped %s: it cites message %d, which is not in the batch.", path, message_id
    )
    return False


def _reminders(
    reply: dict[str, Any], conversation: Conversation
) -> list[ReminderDraft]:
    allowed = conversation.message_ids
    reminders = []
    for index, item in enumerate(_items(reply, "reminders")):
        path = f"reminders[{index}]"
        source = _field(item, "source_message_id", int, path)
        draft = ReminderDraft(
            text=_field(item, "text", str, path).strip(),
            due_at=_due_at(
                _field(item, "due_at", str, path), conversation, f"{path}.due_at"
            ),
            source_message_id=source,
            promised_by=cast(Party, _choice(item, "promised_by", _PARTIES, path)),
            kind=cast(ReminderKind, _choice(item, "kind", _REMINDER_KINDS, path)),
        )
        if _known(source, allowed, path):
            reminders.append(draft)

    return reminders


def _entities(reply: dict[str, Any], conversation: Conversation) -> list[Entity]:
    allowed = conversation.message_ids
    entities = []
    for index, item in enumerate(_items(reply, "entities")):
        path = f"entities[{index}]"
        message_id = _field(item, "message_id", int, path)
        currency = item.get("currency")
        if currency is not None and not isinstance(currency, str):
            raise InvalidModelOutput(
                f"{path}.currency is not a string.", path=f"{path}.currency"
            )

        entity = Entity(
            kind=_choice(item, "kind", ENTITY_KINDS, path),  # type: ignore[arg-type]
            value=_field(item, "value", str, path),
            message_id=message_id,
            currency=currency.upper() if currency else None,
        )
        if _known(message_id, allowed, path):
            entities.append(entity)

    return entities


def _signals(reply: dict[str, Any], conversation: Conversation) -> list[IntentSignal]:
    allowed = conversation.message_ids
    signals = []
    for index, item in enumerate(_items(reply, "intent_signals")):
        path = f"intent_signals[{index}]"
        message_id = _field(item, "message_id", int, path)
        strength = min(1.0, max(0.0, _field(item, "strength", float, path)))
        signal = IntentSignal(
            kind=_choice(item, "kind", SIGNAL_KINDS, path),  # type: ignore[arg-type]
            strength=strength,
            message_id=message_id,
        )
        if _known(message_id, allowed, path):
            signals.append(signal)

    return signals


def _score(reply: dict[str, Any]) -> ContactScore:
    score = _field(reply, "score", dict, "reply")
    reasons = []
    for index, item in enumerate(_field(score, "reasons", list, "score")):
        path = f"score.reasons[{index}]"
        if not isinstance(item, dict):
            raise InvalidModelOutput(f"{path} is not an object.", path=path)
        reasons.append(
            ScoreReason(
                code=_field(item, "code", str, path),
                points=_field(item, "points", int, path),
                text=_field(item, "text", str, path),
            )
        )

    return ContactScore(
        score=min(100, max(0, _field(score, "value", int, "score"))),
        reasons=tuple(reasons),
        strong_intent=_field(score, "strong_intent", bool, "score"),
    )


def parse_output(
    content: str, conversation: Conversation, usage: Usage
) -> AnalysisResult:
    """Check a model's reply and build the analysis result.

    Parameters:
      content: The reply's message content, expected to be a JSON object.
      conversation: The analyzed conversation, for its ids and time zone.
      usage: The request's usage, passed through to the result.

    Returns:
      The result, without findings that cite unknown message ids.

    Raises:
      InvalidModelOutput: When the content is not JSON, a field is missing or
        has the wrong type, or a due time does not parse.
    """
    try:
        reply = json.loads(content)
    except json.JSONDecodeError as error:
        raise InvalidModelOutput(
            f"The reply is not valid JSON: {error.msg} at character {error.pos}."
        ) from None

    if not isinstance(reply, dict):
        raise InvalidModelOutput(
            f"The reply is a JSON {type(reply).__name__}, not an object."
        )

    return AnalysisResult(
        reminders=tuple(_reminders(reply, conversation)),
        entities=tuple(_entities(reply, conversation)),
        signals=tuple(_signals(reply, conversation)),
        usage=usage,
        score=_score(reply),
    )
