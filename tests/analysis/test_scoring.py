"""Contact scoring: reasons, clamping, determinism and strong intent."""

from __future__ import annotations

from datetime import datetime

from wallie.analysis import OfflineAnalyzer, score_contact
from wallie.analysis.types import Entity, IntentSignal

from .helpers import conversation

NOW = datetime.fromisoformat("2026-12-04T18:00:00+00:00")


def _hot() -> tuple:
    chat = conversation(
        ("2026-12-03T09:00:00+00:00", "outbound", "Here is our catalogue."),
        ("2026-12-03T09:20:00+00:00", "inbound", "How much is the pro plan?"),
        ("2026-12-03T09:30:00+00:00", "outbound", "It is €40 per seat."),
        (
            "2026-12-03T09:40:00+00:00",
            "inbound",
            "We want to buy 20 licenses, can you deliver by Friday?",
        ),
    )
    return chat, OfflineAnalyzer().analyze(chat)


def test_scoring_hot_contact_reasons() -> None:
    chat, result = _hot()

    score = score_contact(chat.messages, result.signals, NOW, entities=result.entities)
    codes = {reason.code for reason in score.reasons}

    assert {
        "price_question",
        "purchase_intent",
        "fast_replies",
        "replies_often",
    } <= codes
    assert "recent_activity" in codes
    assert "timing_question" in codes
    assert score.strong_intent is True
    assert score.score == min(100, sum(reason.points for reason in score.reasons))


def test_scoring_reason_text_has_local_date() -> None:
    chat, result = _hot()

    score = score_contact(
        chat.messages, result.signals, NOW, time_zone="Pacific/Auckland"
    )
    price = next(reason for reason in score.reasons if reason.code == "price_question")

    assert price.text == "Asked about price on 2026-12-03."
    assert price.points == 12
    assert price.as_dict() == {
        "code": "price_question",
        "points": 12,
        "text": price.text,
    }


def test_scoring_is_deterministic() -> None:
    chat, result = _hot()

    first = score_contact(chat.messages, result.signals, NOW, entities=result.entities)
    second = score_contact(
        tuple(reversed(chat.messages)), result.signals, NOW, entities=result.entities
    )

    assert first == second


def test_scoring_clamps_to_range() -> None:
    chat = conversation(
        ("2026-01-01T09:00:00+00:00", "outbound", "Hello?"),
        ("2026-01-09T09:00:00+00:00", "outbound", "Anyone?"),
    )
    cold = score_contact(chat.messages, (), NOW)

    assert cold.score == 0
    assert sum(reason.points for reason in cold.reasons) < 0

    chat, result = _hot()
    signals = [
        IntentSignal(kind, 1.0, 4)  # type: ignore[arg-type]
        for kind in (
            "purchase",
            "contract",
            "budget",
            "quote",
            "price",
            "quantity",
            "demo",
        )
    ]
    hot = score_contact(chat.messages, signals, NOW)

    assert hot.score == 100


def test_scoring_recency_bands() -> None:
    chat = conversation(("2026-12-03T09:00:00+00:00", "inbound", "hello"))

    def codes(now: str) -> dict[str, int]:
        reasons = score_contact(chat.messages, (), datetime.fromisoformat(now)).reasons
        return {reason.code: reason.points for reason in reasons}

    assert codes("2026-12-04T09:00:00+00:00")["recent_activity"] == 15
    assert codes("2026-12-08T09:00:00+00:00")["recent_activity"] == 8
    assert "gone_quiet" not in codes("2026-12-20T09:00:00+00:00")
    assert codes("2027-01-20T09:00:00+00:00")["gone_quiet"] == -10
    assert codes("2027-06-20T09:00:00+00:00")["dormant"] == -20


def test_scoring_weak_signal_half_points() -> None:
    chat = conversation(("2026-12-03T09:00:00+00:00", "inbound", "hello"))

    score = score_contact(chat.messages, [IntentSignal("quote", 0.3, 1)], NOW)

    assert {reason.code: reason.points for reason in score.reasons}[
        "quote_request"
    ] == 6


def test_scoring_ignores_signals_of_other_messages() -> None:
    chat = conversation(
        ("2026-12-03T09:00:00+00:00", "inbound", "hello"),
        ("2026-12-03T09:05:00+00:00", "outbound", "We will buy it"),
    )
    signals = [IntentSignal("purchase", 1.0, 2), IntentSignal("purchase", 1.0, 77)]

    score = score_contact(chat.messages, signals, NOW)

    assert "purchase_intent" not in {reason.code for reason in score.reasons}
    assert score.strong_intent is False


def test_scoring_slow_and_rare_replies() -> None:
    chat = conversation(
        ("2026-11-20T09:00:00+00:00", "outbound", "Hi"),
        ("2026-11-24T09:00:00+00:00", "inbound", "hi"),
        ("2026-11-25T09:00:00+00:00", "outbound", "Any news?"),
        ("2026-11-28T09:00:00+00:00", "outbound", "Ping"),
        ("2026-11-29T09:00:00+00:00", "outbound", "Hello?"),
    )

    codes = {reason.code for reason in score_contact(chat.messages, (), NOW).reasons}

    assert "slow_replies" in codes
    assert "rarely_replies" not in codes  # 1 of 2 turns answered


def test_scoring_amount_from_contact() -> None:
    chat = conversation(("2026-12-03T09:00:00+00:00", "inbound", "Budget is 5k"))
    entities = [Entity("amount", "5000", 1, "EUR")]

    score = score_contact(chat.messages, (), NOW, entities=entities)
    amount = next(
        reason for reason in score.reasons if reason.code == "amount_mentioned"
    )

    assert amount.text == "Mentioned an amount of 5000 EUR."


def test_scoring_no_inbound() -> None:
    chat = conversation(("2026-12-03T09:00:00+00:00", "outbound", "Hi"))

    score = score_contact(chat.messages, (), NOW)

    assert [reason.code for reason in score.reasons] == ["no_inbound"]
    assert score.score == 0
