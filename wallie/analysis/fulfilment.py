"""Promises kept later in a conversation: "calling you now", "quote attached".

A reminder comes from a promise or a request to call, send or confirm
something.  When a later message from the party who has to act reports that
the call, the sending or the confirmation happened, the reminder is done,
and reminding the salesperson of it would be noise.

The rules are deliberately narrow, because closing a reminder wrongly hides
a promise.  A message fulfils a reminder only when:

- it comes after the reminder's source message, from the party who has to
  act, or, for a call, from the other party thanking for the call;
- the source message names exactly one of the actions below;
- the later message carries that action's "done" wording in one of the
  five languages of the offline analyzer, and no negation, question mark,
  later time or weekday ("not yet", "tomorrow", "on Monday", "¿...?");
- for sending, it names the promised object (a quote, an invoice ...) or
  comes with a file whose name contains it, and names no other document.

Promises to meet or to do a demo are never closed here: a meeting leaves no
trace in the chat.

NOTE: a closed reminder is not reopened when the message that closed it is
deleted later, and messages stored before the reminder's own analysis are
not searched for evidence.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..db.models import Attachment, Reminder
from ..db.models import Message as MessageRow
from ..logging import get_logger
from .text import fold

logger = get_logger(__name__)

#: Words of a source message that name the action, by action, after folding.
#: "phone" is left out: "my phone number" names no call.
_ACTIONS: dict[str, re.Pattern[str]] = {
    "call": re.compile(
        r"\b(call|ring|llamo|llamar|llamada|ligo|ligar|ligacao|ruf\w*|anruf\w*"
        r"|telefonier\w*|appel\w*)\b"
    ),
    "send": re.compile(
        r"\b(send|sending|email|mail|envio|enviar|envia|mando|mandar|manda|schick\w*|send\w*"
        r"|envoi\w*|envoy\w*|quote|proposal|invoice)\b"
    ),
    "confirm": re.compile(r"\b(confirm\w*|bestatig\w*)\b"),
}

#: Wording from the party who had to act that reports the action as done.
_DONE: dict[str, re.Pattern[str]] = {
    "call": re.compile(
        r"\b(calling you|called you|just called"
        r"|te estoy llamando|te llame|te llamo ahora"
        r"|estou ligando|liguei|te liguei"
        r"|rufe (dich|sie) (jetzt|gerade) an|habe (dich|sie) angerufen"
        r"|je t'appelle maintenant|je vous appelle maintenant|je t'ai appele|je vous ai appele)\b"
    ),
    "send": re.compile(
        r"\b(attached|attaching|sent you|just sent|i've sent|i have sent"
        r"|adjunto|te envie|le envie|te mande|segue|anexo|enviei|te mandei"
        r"|anbei|im anhang|habe (dir|ihnen) .{0,40}geschickt"
        r"|ci-joint|en piece jointe|je t'ai envoye|je vous ai envoye)\b"
    ),
    "confirm": re.compile(
        r"\b(confirmed|we confirm|i confirm|confirmado|confirmada|confirmamos"
        r"|bestatigt|wir bestatigen|ich bestatige|nous confirmons|je confirme)\b"
    ),
}

#: Wording that presents a thing ("here is ..."): it counts for sending only
#: together with the promised object, named or in the attached file's name.
_PRESENTING = re.compile(
    r"\b(here is|here it is|here's|heres|aqui esta|aqui tienes|hier ist|hier sind|voici)\b"
)

#: Wording from the other party that thanks for a call that took place.
_CALL_THANKS = re.compile(
    r"\b(thanks for the call|thank you for the call|gracias por la llamada"
    r"|obrigad[oa] pela ligacao|danke fur(s| das) (telefonat|gesprach)|merci pour l'appel)\b"
)

#: Words that mark the action as not done yet, due later or in question:
#: a negation, a later time, a need, or a question mark.
_NOT_DONE = re.compile(
    r"\?|n't\b|\b(not|never|yet|no|still|later|will|going to|tomorrow|need"
    r"|todavia|aun|nunca|manana|necesito"
    r"|nao|ainda|amanha|preciso"
    r"|nicht|noch|nie|kein\w*|morgen|spater|brauche"
    r"|pas|jamais|demain|plus tard|besoin"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|lunes|martes|miercoles|jueves|viernes|sabado|domingo"
    r"|segunda|terca|quarta|quinta|sexta"
    r"|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag"
    r"|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)\b"
)

#: Things that are sent, in the five languages, after folding.
_OBJECTS = re.compile(
    r"\b(quote|quotation|proposal|offer|invoice|contract|catalog\w*|price list|samples?"
    r"|presupuesto|cotizacion|propuesta|factura|contrato|catalogo|muestras?"
    r"|orcamento|proposta|fatura|amostras?"
    r"|angebot|rechnung|vertrag|katalog|preisliste|muster"
    r"|devis|proposition|facture|contrat|echantillons?)\b"
)


@dataclass(frozen=True)
class LaterMessage:
    """A message after a reminder's source, as the fulfilment rules see it.

    Attributes:
      id: The message id.
      direction: ``"inbound"`` or ``"outbound"``.
      sender_id: The contact who sent an inbound message, if known.
      text: The message body.
      file_names: Names of the files attached to the message, or to one from
        the same sender within :data:`FILE_WINDOW_S` of it.
    """

    id: int
    direction: str
    sender_id: int | None
    text: str
    file_names: tuple[str, ...] = ()


def _folded(text: str) -> str:
    return fold(text).replace("\u2019", "'")


def action_of(source_text: str) -> str | None:
    """Return the one action a promise or request names: call, send or confirm.

    A text that names none, or several ("send the quote and call you"),
    returns None, so its reminder is never closed by these rules.

    Examples:
      >>> action_of("I'll call you tomorrow at 10")
      'call'
      >>> action_of("Can you send the quote by Friday 3pm?")
      'send'
      >>> action_of("Let's do a demo next Tuesday") is None
      True
    """
    folded = _folded(source_text)
    found = [action for action, pattern in _ACTIONS.items() if pattern.search(folded)]
    return found[0] if len(found) == 1 else None


def fulfilling_message(
    source_text: str,
    promised_by: str,
    contact_id: int | None,
    later: Sequence[LaterMessage],
) -> LaterMessage | None:
    """Return the first of ``later`` that reports the promise as kept, or None.

    Parameters:
      source_text: The text of the message with the promise or request.
      promised_by: ``"user"`` or ``"contact"``, the party who has to act.
      contact_id: For a contact's promise, the contact; in a group, an
        incoming message from anyone else does not count.
      later: Messages after the source message, oldest first.
    """
    action = action_of(source_text)
    if action is None:
        return None

    promised_objects = set(_OBJECTS.findall(_folded(source_text)))
    acting = "outbound" if promised_by == "user" else "inbound"
    for message in later:
        if not _from_party(message, acting, contact_id) and not (
            action == "call" and _from_party(message, _other(acting), contact_id)
        ):
            continue

        folded = _folded(message.text)
        if _NOT_DONE.search(folded):
            continue

        if message.direction != acting:
            fulfilled = _CALL_THANKS.search(folded) is not None
        elif action == "send":
            fulfilled = _reports_sending(folded, promised_objects, message.file_names)
        else:
            fulfilled = _DONE[action].search(folded) is not None

        if fulfilled:
            return message

    return None


def _from_party(message: LaterMessage, direction: str, contact_id: int | None) -> bool:
    if message.direction != direction:
        return False

    # In a group, only the contact named on the reminder speaks for the contact.
    return direction == "outbound" or contact_id is None or message.sender_id in (None, contact_id)


def _other(direction: str) -> str:
    return "inbound" if direction == "outbound" else "outbound"


def _reports_sending(folded: str, promised_objects: set[str], file_names: tuple[str, ...]) -> bool:
    named = set(_OBJECTS.findall(folded))
    if named - promised_objects:
        return False  # the message is about another document

    in_files = any(
        object_name in _folded(name) for name in file_names for object_name in promised_objects
    )
    shows_promised = bool(named & promised_objects) or in_files
    if _DONE["send"].search(folded):
        # "Attached" after a promise that names no object needs a file with it.
        return shows_promised if promised_objects else bool(file_names)

    return _PRESENTING.search(folded) is not None and shows_promised


# Storage: close the open reminders of a conversation that new messages fulfil.

#: How far apart a message and a file from the same sender may be to count
#: as one sending ("Quote attached" followed by the PDF), in seconds.
FILE_WINDOW_S = 300


def close_kept_promises(conversation_id: int, new_messages: Sequence[MessageRow]) -> list[int]:
    """Mark done the open reminders of a conversation that ``new_messages`` fulfil.

    Runs inside the analysis transaction, after the reminders of
    ``new_messages`` themselves were stored, so a promise made and kept in
    one import is closed too.

    Returns:
      The ids of the reminders marked done.
    """
    if not new_messages:
        return []

    reminders = list(
        Reminder.select(Reminder, MessageRow)
        .join(MessageRow, on=(Reminder.source_message == MessageRow.id))
        .where(
            (Reminder.conversation == conversation_id)
            & Reminder.status.in_(("open", "snoozed"))
        )
    )
    if not reminders:
        return []

    later = _later_messages(new_messages)
    closed = []
    for reminder in reminders:
        source = reminder.source_message
        after = [
            message
            for row, message in later
            if (row.sent_at, row.id) > (source.sent_at, source.id)
        ]
        evidence = fulfilling_message(source.body, reminder.promised_by, reminder.contact_id, after)
        if evidence is None:
            continue

        Reminder.update(status="done").where(Reminder.id == reminder.id).execute()
        logger.info(
            "Marked reminder %s of user %s done because message %s reports the promise kept.",
            reminder.id, reminder.user_id, evidence.id,
        )
        closed.append(reminder.id)

    return closed


def _later_messages(rows: Sequence[MessageRow]) -> list[tuple[MessageRow, LaterMessage]]:
    ordered = sorted(rows, key=lambda row: (row.sent_at, row.id))
    files: dict[int, list[str]] = defaultdict(list)
    for attachment in Attachment.select(Attachment.message, Attachment.file_name).where(
        Attachment.message.in_([row.id for row in ordered])
    ):
        files[attachment.message_id].append(attachment.file_name or "")

    file_times: dict[tuple[str, int | None], list[tuple[datetime, str]]] = defaultdict(list)
    for row in ordered:
        for name in files.get(row.id, ()):
            file_times[(row.direction, row.sender_id)].append((row.sent_at, name))

    result = []
    for row in ordered:
        names = tuple(
            name
            for moment, name in file_times[(row.direction, row.sender_id)]
            if abs((moment - row.sent_at).total_seconds()) <= FILE_WINDOW_S
        )
        result.append((row, LaterMessage(row.id, row.direction, row.sender_id, row.body or "", names)))

    return result
