"""Score a contact from 0 to 100 with reasons, from messages and buying signals.

The score is the sum of the reasons' points clamped to 0..100, and the same
inputs always give the same score. The terms are:

- buying signals, each kind counted once (purchase, contract, budget, quote,
  price, quantity, demo, delivery date, meeting), at half points when the
  signal is weak (strength below 0.5);
- questions about timing (an inbound question with a date or time of day);
- an amount written by the contact;
- responsiveness: the median time the contact takes to answer the user, and
  the share of the user's turns that get an answer;
- recency of the last inbound message relative to ``now``;
- volume of inbound messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from .text import fold, words
from .timeexpr import find_dates, find_time_of_day, might_contain_time
from .types import ContactScore, Entity, IntentSignal, Message, ScoreReason, SignalKind

#: Points and wording of each buying signal kind, counted once per contact.
SIGNAL_POINTS: dict[SignalKind, tuple[str, int, str]] = {
    "purchase": ("purchase_intent", 30, "Said they want to buy or order"),
    "contract": ("contract_discussed", 15, "Discussed a contract or signature"),
    "budget": ("budget_stated", 15, "Talked about their budget"),
    "quote": ("quote_request", 12, "Asked for a quote"),
    "price": ("price_question", 12, "Asked about price"),
    "quantity": ("quantity_stated", 10, "Named a quantity"),
    "demo": ("demo_requested", 10, "Asked for a demo or trial"),
    "delivery_date": ("delivery_asked", 8, "Asked about delivery"),
    "meeting": ("meeting_requested", 5, "Proposed a meeting or call"),
}

#: Signal strength below which a signal earns half its points.
WEAK_SIGNAL = 0.5

#: Signal strength from which a purchase or contract signal is a strong intent.
STRONG_SIGNAL = 0.9

#: Points of an inbound question about timing.
TIMING_QUESTION_POINTS = 8

#: Points of an amount written by the contact.
AMOUNT_POINTS = 5

#: (maximum median reply delay, points) from fast to slow; slower gets nothing.
REPLY_DELAY_POINTS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(hours=1), 15),
    (timedelta(hours=6), 10),
    (timedelta(hours=24), 5),
)

#: Median reply delay from which the contact counts as slow.
SLOW_REPLY = timedelta(hours=72)
SLOW_REPLY_POINTS = -5

#: Answered share of the user's turns, and the points, for frequent replies.
OFTEN_REPLY_SHARE, OFTEN_REPLY_POINTS = 0.8, 10

#: Answered share of the user's turns, and the points, for rare replies.
RARE_REPLY_SHARE, RARE_REPLY_POINTS = 0.3, -10

#: User turns needed before the reply share counts.
MIN_TURNS_FOR_SHARE = 2

#: (maximum age of the last inbound message, points), newest first.
RECENCY_POINTS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(days=2), 15),
    (timedelta(days=7), 8),
    (timedelta(days=30), 0),
    (timedelta(days=90), -10),
)

#: Points when the last inbound message is older than every RECENCY_POINTS age.
DORMANT_POINTS = -20

#: Points when the contact never wrote.
NO_INBOUND_POINTS = -10

#: (minimum inbound messages, points), largest first.
VOLUME_POINTS: tuple[tuple[int, int], ...] = ((10, 10), (4, 5))


@dataclass(frozen=True)
class _Turn:
    """A run of the user's messages and the contact's answer, if any."""

    last_outbound: datetime
    reply: datetime | None


def _day(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).date().isoformat()


def _signal_reasons(
    signals: Iterable[IntentSignal], sent_at: dict[int, datetime], zone: ZoneInfo
) -> list[ScoreReason]:
    strongest: dict[SignalKind, IntentSignal] = {}
    for signal in signals:
        if signal.message_id not in sent_at:
            continue
        current = strongest.get(signal.kind)
        if current is None or signal.strength > current.strength:
            strongest[signal.kind] = signal

    reasons = []
    for kind, signal in strongest.items():
        code, points, wording = SIGNAL_POINTS[kind]
        if signal.strength < WEAK_SIGNAL:
            points //= 2
        day = _day(sent_at[signal.message_id], zone)
        reasons.append(ScoreReason(code, points, f"{wording} on {day}."))

    return reasons


def _is_timing_question(message: Message, zone: ZoneInfo) -> bool:
    if "?" not in message.text:
        return False

    folded = fold(message.text)
    if not might_contain_time(folded, words(folded)):
        return False

    now = message.sent_at.astimezone(zone)
    dates = find_dates(folded, now, "en", zone.key)
    return bool(dates) or find_time_of_day(folded) is not None


def _timing_reason(inbound: Sequence[Message], zone: ZoneInfo) -> list[ScoreReason]:
    for message in inbound:
        if _is_timing_question(message, zone):
            day = _day(message.sent_at, zone)
            text = f"Asked about timing on {day}."
            return [ScoreReason("timing_question", TIMING_QUESTION_POINTS, text)]

    return []


def _amount_reason(
    entities: Iterable[Entity], inbound_ids: set[int]
) -> list[ScoreReason]:
    for entity in entities:
        if entity.kind == "amount" and entity.message_id in inbound_ids:
            amount = f"{entity.value} {entity.currency or ''}".rstrip()
            text = f"Mentioned an amount of {amount}."
            return [ScoreReason("amount_mentioned", AMOUNT_POINTS, text)]

    return []


def _turns(messages: Sequence[Message]) -> list[_Turn]:
    turns: list[_Turn] = []
    last_outbound: datetime | None = None
    for message in messages:
        if message.direction == "outbound":
            last_outbound = message.sent_at
        elif message.direction == "inbound" and last_outbound is not None:
            turns.append(_Turn(last_outbound, message.sent_at))
            last_outbound = None

    if last_outbound is not None:
        turns.append(_Turn(last_outbound, None))

    return turns


def _responsiveness_reasons(messages: Sequence[Message]) -> list[ScoreReason]:
    turns = _turns(messages)
    delays = [
        turn.reply - turn.last_outbound for turn in turns if turn.reply is not None
    ]
    reasons = []
    if delays:
        typical = median(delays)
        hours = typical.total_seconds() / 3600
        for limit, points in REPLY_DELAY_POINTS:
            if typical <= limit:
                text = f"Usually replies within {_duration_text(typical)}."
                reasons.append(ScoreReason("fast_replies", points, text))
                break
        else:
            if typical >= SLOW_REPLY:
                text = f"Usually takes {hours / 24:.1f} days to reply."
                reasons.append(ScoreReason("slow_replies", SLOW_REPLY_POINTS, text))

    if len(turns) >= MIN_TURNS_FOR_SHARE:
        share = len(delays) / len(turns)
        answered = f"Answered {len(delays)} of your {len(turns)} messages."
        if share >= OFTEN_REPLY_SHARE:
            reasons.append(ScoreReason("replies_often", OFTEN_REPLY_POINTS, answered))
        elif share <= RARE_REPLY_SHARE:
            reasons.append(ScoreReason("rarely_replies", RARE_REPLY_POINTS, answered))

    return reasons


def _recency_reason(inbound: Sequence[Message], now: datetime) -> list[ScoreReason]:
    if not inbound:
        return [ScoreReason("no_inbound", NO_INBOUND_POINTS, "Has not written yet.")]

    age = now - inbound[-1].sent_at
    days = max(age.days, 0)
    for limit, points in RECENCY_POINTS:
        if age <= limit:
            if points == 0:
                return []
            code = "recent_activity" if points > 0 else "gone_quiet"
            return [ScoreReason(code, points, f"Last wrote {days} days ago.")]

    return [ScoreReason("dormant", DORMANT_POINTS, f"Last wrote {days} days ago.")]


def _volume_reason(inbound: Sequence[Message]) -> list[ScoreReason]:
    for minimum, points in VOLUME_POINTS:
        if len(inbound) >= minimum:
            text = f"Sent {len(inbound)} messages."
            return [ScoreReason("active_conversation", points, text)]

    return []


def has_strong_intent(signals: Iterable[IntentSignal]) -> bool:
    """Return whether a signal states a purchase, order or signature outright."""
    return any(
        signal.kind in ("purchase", "contract") and signal.strength >= STRONG_SIGNAL
        for signal in signals
    )


def score_contact(
    messages: Sequence[Message],
    signals: Iterable[IntentSignal],
    now: datetime,
    *,
    entities: Iterable[Entity] = (),
    time_zone: str = "UTC",
) -> ContactScore:
    """Score a contact from their conversation and its buying signals.

    Parameters:
      messages: The conversation's messages, in any order.
      signals: Buying signals found in those messages. Signals that cite a
        message not in ``messages`` are ignored.
      now: The moment recency is measured from, aware.
      entities: Entities found in those messages; amounts written by the
        contact add points.
      time_zone: The user's IANA time zone, for the dates in the reasons.

    Returns:
      The score, its reasons with the largest contribution first, and whether
      the contact showed a strong intent.
    """
    zone = ZoneInfo(time_zone)
    ordered = sorted(
        (message for message in messages if message.direction != "system"),
        key=lambda message: (message.sent_at, message.id),
    )
    inbound = [message for message in ordered if message.direction == "inbound"]
    inbound_sent_at = {message.id: message.sent_at for message in inbound}
    signal_list = [signal for signal in signals if signal.message_id in inbound_sent_at]

    reasons = [
        *_signal_reasons(signal_list, inbound_sent_at, zone),
        *_timing_reason(inbound, zone),
        *_amount_reason(entities, set(inbound_sent_at)),
        *_responsiveness_reasons(ordered),
        *_recency_reason(inbound, now),
        *_volume_reason(inbound),
    ]
    reasons.sort(key=lambda reason: (-reason.points, reason.code))
    total = sum(reason.points for reason in reasons)
    return ContactScore(
        score=max(0, min(100, total)),
        reasons=tuple(reasons),
        strong_intent=has_strong_intent(signal_list),
    )


def _duration_text(delay: timedelta) -> str:
    """Return ``delay`` rounded up for a reason text, in minutes or hours.

    Examples:
      >>> _duration_text(timedelta(seconds=20))
      '1 minute'
      >>> _duration_text(timedelta(minutes=95))
      '1.6 hours'
    """
    minutes = max(1, math.ceil(delay.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} minute" + ("" if minutes == 1 else "s")

    return f"{delay.total_seconds() / 3600:.1f} hours"
