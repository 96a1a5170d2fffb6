"""Offline analyzer: reminders, time resolution, entities and signals.

2026-12-04 is a Friday; every case states its message time in UTC.
"""

from __future__ import annotations

from datetime import UTC

import pytest

from wallie.analysis import OfflineAnalyzer
from wallie.analysis.timeexpr import TIME_WORDS

from .helpers import analyze_one, conversation, local_due


def test_offline_resolves_next_tuesday_in_user_time_zone() -> None:
    # 23:30 UTC on Monday 30 Nov is still Monday in New York (18:30), but
    # already Tuesday in Berlin, so "next Tuesday" differs by a week.
    sent_at = "2026-11-30T23:30:00+00:00"
    text = "Can we do a demo next Tuesday?"

    new_york = analyze_one(text, sent_at, "inbound", "America/New_York")
    berlin = analyze_one(text, sent_at, "inbound", "Europe/Berlin")

    assert local_due(new_york, "America/New_York") == "2026-12-01 09:00"
    assert local_due(berlin, "Europe/Berlin") == "2026-12-08 09:00"
    assert new_york.reminders[0].kind == "request"
    assert new_york.reminders[0].promised_by == "user"


def test_offline_resolves_tomorrow_with_time_of_day() -> None:
    result = analyze_one(
        "I'll send the quote tomorrow by 3pm", time_zone="Europe/Madrid"
    )

    assert local_due(result, "Europe/Madrid") == "2026-12-05 15:00"
    assert result.reminders[0].kind == "commitment"
    assert result.reminders[0].promised_by == "user"
    assert "quote" in result.reminders[0].text
    assert result.reminders[0].due_at.tzinfo == UTC


def test_offline_spanish_call_on_monday() -> None:
    result = analyze_one("te llamo el lunes", time_zone="Europe/Madrid", language="es")

    assert local_due(result, "Europe/Madrid") == "2026-12-07 09:00"


def test_offline_german_next_week_is_monday() -> None:
    result = analyze_one(
        "Ich melde mich nächste Woche", time_zone="Europe/Berlin", language="de"
    )

    assert local_due(result, "Europe/Berlin") == "2026-12-07 09:00"


def test_offline_french_quote_tomorrow() -> None:
    result = analyze_one(
        "Je vous envoie le devis demain", time_zone="Europe/Paris", language="fr"
    )

    assert local_due(result, "Europe/Paris") == "2026-12-05 09:00"


def test_offline_portuguese_hour_with_h() -> None:
    result = analyze_one(
        "te mando a proposta amanhã às 10h",
        time_zone="America/Sao_Paulo",
        language="pt",
    )

    assert local_due(result, "America/Sao_Paulo") == "2026-12-05 10:00"


def test_offline_contact_commitment_is_promised_by_contact() -> None:
    result = analyze_one("We will confirm the order this week.", direction="inbound")

    assert result.reminders[0].promised_by == "contact"
    assert result.reminders[0].kind == "commitment"
    assert local_due(result, "Europe/London") == "2026-12-04 17:00"


def test_offline_user_request_is_for_contact() -> None:
    result = analyze_one("Could you sign the contract by Wednesday?")

    assert result.reminders[0].kind == "request"
    assert result.reminders[0].promised_by == "contact"
    assert local_due(result, "Europe/London") == "2026-12-09 09:00"


def test_offline_late_end_of_day() -> None:
    early = analyze_one("I'll email it by end of day", "2026-12-04T10:00:00+00:00")
    late = analyze_one("I'll email it by end of day", "2026-12-04T18:20:00+00:00")

    assert local_due(early, "Europe/London") == "2026-12-04 17:00"
    assert local_due(late, "Europe/London") == "2026-12-04 19:20"


def test_offline_in_two_hours_is_exact() -> None:
    result = analyze_one("I'll get back to you in 2 hours", "2026-12-04T10:07:00+00:00")

    assert local_due(result, "Europe/London") == "2026-12-04 12:07"


def test_offline_time_without_date_rolls_to_tomorrow() -> None:
    morning = analyze_one("I'll call you at 15:00", "2026-12-04T10:00:00+00:00")
    evening = analyze_one("I'll call you at 15:00", "2026-12-04T16:00:00+00:00")

    assert local_due(morning, "Europe/London") == "2026-12-04 15:00"
    assert local_due(evening, "Europe/London") == "2026-12-05 15:00"


def test_offline_absolute_date_uses_dateparser() -> None:
    result = analyze_one(
        "Could you send the proposal by 15 December?", direction="inbound"
    )
    us_order = analyze_one("I'll ship it on 1/12", time_zone="America/Chicago")
    day_first = analyze_one("I'll ship it on 1/12")

    assert local_due(result, "Europe/London") == "2026-12-15 09:00"
    assert local_due(us_order, "America/Chicago") == "2027-01-12 09:00"
    assert local_due(day_first, "Europe/London") == "2027-12-01 09:00"


def test_offline_weekday_on_same_day() -> None:
    plain = analyze_one("I'll call you on Friday")
    this = analyze_one("I'll call you this Friday")

    assert local_due(plain, "Europe/London") == "2026-12-11 09:00"
    assert local_due(this, "Europe/London") == "2026-12-04 17:00"


def test_offline_next_week_with_weekday() -> None:
    result = analyze_one(
        "Let's meet next week on Wednesday at 11", "2026-12-01T10:00:00+00:00"
    )

    assert local_due(result, "Europe/London") == "2026-12-09 11:00"


@pytest.mark.parametrize(
    "text",
    [
        "ok thanks",
        "Hi! Good morning",
        "See you tomorrow!",
        "I'll see you tomorrow then",
        "Talk tomorrow",
        "Guten Morgen!",
        "Bis morgen",
        "Hasta mañana",
        "Até amanhã",
        "À demain",
        "Nos vemos el martes",
        "We met last Tuesday",
        "Please find the invoice from March 3rd attached",
        "Die Rechnung vom 3. März ist bezahlt",
        "La factura del 3 de marzo ya está pagada",
        "On s'est vus mardi dernier",
        "Na segunda passada conversei com seu colega",
        "What's the price for the premium plan?",
        "Can you send me the quote?",
        "I can't make it tomorrow",
        "The software update is ready tomorrow",
        "I sent it yesterday",
        "a quinta vez que pergunto",
    ],
)
def test_offline_ignores_text_without_promise_and_future_time(text: str) -> None:
    for direction in ("inbound", "outbound"):
        result = analyze_one(text, direction=direction)  # type: ignore[arg-type]

        assert result.reminders == (), direction


def test_offline_today_past_hour_gives_no_reminder() -> None:
    result = analyze_one("I'll call you today at 9am", "2026-12-04T11:00:00+00:00")

    assert result.reminders == ()


def test_offline_reminder_text_names_contact() -> None:
    result = OfflineAnalyzer().analyze(
        conversation(
            ("2026-12-04T09:00:00+00:00", "inbound", "Hi, any news on the offer?"),
            ("2026-12-04T09:10:00+00:00", "outbound", "I'll send it tomorrow."),
        )
    )

    assert result.reminders[0].text == "You promised Ana: “I'll send it tomorrow.”"
    assert result.reminders[0].source_message_id == 2


def test_offline_skips_system_messages() -> None:
    result = OfflineAnalyzer().analyze(
        conversation(("2026-12-04T09:00:00+00:00", "system", "I'll send it tomorrow."))
    )

    assert result.reminders == ()
    assert result.entities == ()


@pytest.mark.parametrize(
    ("text", "value", "currency"),
    [
        ("Son 1.200,50 € en total", "1200.50", "EUR"),
        ("Total is $1,200.50", "1200.50", "USD"),
        ("1,200.50 USD", "1200.50", "USD"),
        ("O total é R$ 350,00", "350.00", "BRL"),
        ("EUR 90 per seat", "90", "EUR"),
        ("around 5k€", "5000", "EUR"),
        ("2 500 euros", "2500", "EUR"),
        ("£8,000 budget", "8000", "GBP"),
        ("10.000 USD", "10000", "USD"),
    ],
)
def test_offline_amount_formats(text: str, value: str, currency: str) -> None:
    result = analyze_one(text, direction="inbound")
    amounts = [entity for entity in result.entities if entity.kind == "amount"]

    assert [(entity.value, entity.currency) for entity in amounts] == [
        (value, currency)
    ]


def test_offline_amount_needs_a_currency() -> None:
    result = analyze_one("We have 1,200.50 reasons", direction="inbound")

    assert [entity for entity in result.entities if entity.kind == "amount"] == []


def test_offline_contact_details() -> None:
    result = analyze_one(
        "Write to Ana.Lopez@Example.com or call +34 612 345 678, "
        "details at https://example.com/offer).",
        direction="inbound",
    )
    found = {(entity.kind, entity.value) for entity in result.entities}

    assert ("email", "ana.lopez@example.com") in found
    assert ("phone", "+34612345678") in found
    assert ("url", "https://example.com/offer") in found


def test_offline_phone_region_from_language() -> None:
    result = analyze_one(
        "Meine Nummer ist 030 1234567", direction="inbound", language="de"
    )

    assert [entity.value for entity in result.entities if entity.kind == "phone"] == [
        "+49301234567"
    ]


def test_offline_date_entities_for_mentioned_dates() -> None:
    result = analyze_one("We met last Tuesday", direction="inbound")

    assert [entity.value for entity in result.entities if entity.kind == "date"] == [
        "2026-12-01"
    ]


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("How much is the pro plan?", {"price"}),
        ("Can you send me a quote for 300 units?", {"quote", "quantity"}),
        ("Our budget is around €5.000", {"budget"}),
        ("We want to buy 20 licenses", {"purchase", "quantity"}),
        ("Können Sie mir ein Angebot schicken?", {"quote"}),
        ("¿Cuánto cuesta la instalación?", {"price"}),
        ("Qual o prazo de entrega?", {"delivery_date"}),
        ("On peut faire une démo ?", {"demo"}),
        ("Is the contract ready to sign?", {"contract", "purchase"}),
        ("haha ok", set()),
    ],
)
def test_offline_buying_signals(text: str, kinds: set[str]) -> None:
    result = analyze_one(text, direction="inbound")

    assert {signal.kind for signal in result.signals} == kinds


def test_offline_signals_only_from_contact() -> None:
    result = analyze_one("How much is the pro plan?", direction="outbound")

    assert result.signals == ()


def test_offline_usage_is_zero() -> None:
    result = analyze_one("ok")

    assert result.usage.provider == "offline"
    assert result.usage.cost_usd == 0
    assert result.usage.tokens_in == 0
    assert result.score is None


def test_time_words_are_folded() -> None:
    # The pre-filter compares against folded words, so an accent in the set
    # would never match.
    assert all(word.isascii() or "ß" in word for word in TIME_WORDS)
