"""Reminders closed by a later message that says the promise was kept."""

from __future__ import annotations

from typing import Any

import peewee
import pytest

from wallie.analysis import OfflineAnalyzer
from wallie.analysis.fulfilment import LaterMessage, action_of, fulfilling_message
from wallie.analysis.service import analyze_conversation
from wallie.db.models import Attachment, Reminder

from .factory import PROMISE, make_chat


def offline(conversation: Any, outcome: Any) -> Any:
    return OfflineAnalyzer().analyze(conversation)


def later(text: str, direction: str = "outbound", sender_id: int | None = None,
          files: tuple[str, ...] = ()) -> LaterMessage:
    return LaterMessage(1, direction, sender_id, text, files)


@pytest.mark.parametrize(
    ("source", "promised_by", "message", "kept"),
    [
        ("I'll call you tomorrow at 10", "user", later("Good morning Ana, calling you now"), True),
        ("Te llamo el lunes", "user", later("Hola, te estoy llamando"), True),
        ("Ich rufe Sie morgen an", "user", later("Ich habe Sie angerufen, bitte zurückrufen"), True),
        ("Can you send the quote by Friday?", "user", later("Quote attached, as promised"), True),
        ("Te envío el presupuesto mañana", "user", later("Adjunto el presupuesto"), True),
        ("Vou enviar o orçamento amanhã", "user", later("Segue o orçamento"), True),
        ("Je vous envoie le devis demain", "user", later("Ci-joint le devis"), True),
        ("I will send the quote tomorrow", "user", later("Here it is", files=("Quote_Q-1.pdf",)), True),
        ("I'll send it to you later today", "user", later("Attached", files=("price.pdf",)), True),
        ("I'll call you tomorrow at 10", "user",
         later("Thanks for the call!", direction="inbound", sender_id=7), True),
        ("We will confirm the order on Monday", "contact",
         later("We confirm the order", direction="inbound", sender_id=7), True),
        # Not kept: no "done" wording, another object, the other party, a meeting.
        ("I'll call you tomorrow at 10", "user", later("ok thanks, talk tomorrow"), False),
        ("I will send the quote tomorrow", "user", later("Here is the invoice for May"), False),
        ("I will send the quote tomorrow", "user",
         later("Here is the quote", direction="inbound", sender_id=7), False),
        ("We will confirm the order on Monday", "contact",
         later("We confirm the order", direction="inbound", sender_id=8), False),
        ("Let's do a demo next Tuesday", "user", later("Thanks for the demo, here is the recap"), False),
        # Said, but not done: negations, questions, later times, needs.
        ("I'll send the quote tomorrow", "user", later("I haven't sent you the quote yet, sorry"), False),
        ("I'll send the quote tomorrow", "user",
         later("Here's the thing about the quote: I need one more day"), False),
        ("I'll send the quote tomorrow", "user", later("The quote isn't attached yet, my mistake"), False),
        ("I'll call you tomorrow at 10", "user", later("I tried to call you but no answer"), False),
        ("I'll call you tomorrow at 10", "user", later("Sorry, I never called you back"), False),
        ("We will confirm the order on Monday", "contact",
         later("Not confirmed yet, still waiting on finance", direction="inbound", sender_id=7), False),
        ("Te mando el presupuesto mañana", "user",
         later("¿Quieres que te envíe el presupuesto también por correo?"), False),
        ("Te mando el presupuesto mañana", "user",
         later("El presupuesto va adjunto en el correo del lunes"), False),
        ("Te llamo mañana a las 10", "user", later("Perdón, al final no te llamé"), False),
        ("Te mando o orçamento amanhã", "user",
         later("O orçamento segue na segunda, ainda falta o frete"), False),
        ("Ich schicke Ihnen das Angebot morgen", "user",
         later("Ich habe Ihnen das Angebot noch nicht geschickt"), False),
        ("Ich schicke Ihnen das Angebot morgen", "user",
         later("Hier ist meine Frage zum Angebot: gilt es auch für 500 Stück?"), False),
        ("Je vous envoie le devis demain", "user",
         later("Voici ma question sur le devis : la livraison est incluse ?"), False),
        # Another document, or nothing promised by name.
        ("I'll send the quote tomorrow", "user",
         later("here is the delivery schedule", files=("schedule.pdf",)), False),
        ("I'll send it to you tomorrow", "user", later("here is the address of our shop"), False),
        ("I'll send you the quote and call you tomorrow", "user", later("I just called you"), False),
        # A request to the contact: their own thanks shows the user called, not them.
        ("Can you call me Monday?", "contact",
         later("thanks for the call", direction="inbound", sender_id=7), False),
    ],
)
def test_fulfilment_rules(source: str, promised_by: str, message: LaterMessage, kept: bool) -> None:
    found = fulfilling_message(source, promised_by, 7, [message])

    assert (found is not None) is kept


def test_action_of_meeting_is_none() -> None:
    assert action_of("Can we meet on Thursday at 4?") is None


def test_kept_promise_closes_reminder(db: peewee.Database) -> None:
    # Given the user's promise, analysed while still open
    chat = make_chat()
    chat.say("outbound", PROMISE, minutes_ago=60)
    analyze_conversation(chat.user.id, chat.conversation.id, offline)
    reminder = Reminder.get()
    assert reminder.status == "open"
    assert reminder.promised_by == "user"

    # When the user later sends the quote with a file
    chat.say("inbound", "Any news on the quote?", minutes_ago=30)
    note = chat.say("outbound", "Here it is, as promised", minutes_ago=10)
    Attachment.create(user=chat.user, message=note, kind="document", file_name="Quote.pdf")
    outcome = analyze_conversation(chat.user.id, chat.conversation.id, offline)

    # Then the reminder is done
    assert outcome.reminders_kept == 1
    assert Reminder.get_by_id(reminder.id).status == "done"


def test_contact_reply_leaves_user_promise_open(db: peewee.Database) -> None:
    chat = make_chat()
    chat.say("outbound", PROMISE, minutes_ago=60)
    chat.say("inbound", "Great, here is our quote template if it helps", minutes_ago=10)

    outcome = analyze_conversation(chat.user.id, chat.conversation.id, offline)

    assert outcome.reminders == 1
    assert outcome.reminders_kept == 0
    assert Reminder.get().status == "open"


def test_promise_made_and_kept_in_one_batch(db: peewee.Database) -> None:
    chat = make_chat()
    chat.say("outbound", "I'll call you tomorrow at 10", minutes_ago=24 * 60)
    chat.say("outbound", "Calling you now", minutes_ago=60)

    outcome = analyze_conversation(chat.user.id, chat.conversation.id, offline)

    assert outcome.reminders == 1
    assert outcome.reminders_kept == 1
    assert Reminder.get().status == "done"
