"""Promises kept later in a conversation: "calling you now", "quote attached".

A reminder comes from a promise or a request to call, send or confirm
something.  When a later message from the party who has to act says that
the call, the sending or the confirmation happened, the reminder is done,
and reminding the salesperson of it would be noise.

The rules are deliberately narrow, because closing a reminder wrongly hides
a promise.  A message fulfils a reminder only when:

- it comes after the reminder's source message, from the party who has to
  act (the user's outgoing messages, or the contact's incoming ones);
- the source message names one of the actions below;
- the later message carries that action's "done" wording in one of the
  five languages of the offline analyzer, and, for sending, also names the
  same object (a quote, an invoice ...) or comes with a file.

Promises to meet or to do a demo are never closed here: a meeting leaves no
trace in the chat.
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
_ACTIONS: dict[str, re.Pattern[str]] = {
    "call": re.compile(
        r"\b(call|ring|phone|llamo|llamar|llamada|ligo|ligar|ligacao|ruf\w*|anruf\w*"
        r"|telefonier\w*|appel\w*|telephon\w*)\b"
    ),
    "send": re.compile(
        r"\b(send|sending|email|mail|envio|enviar|envia|mando|mandar|manda|schick\w*|send\w*"
        r"|envoi\w*|envoy\w*|quote|proposal|invoice)\b"
    ),
    "confirm": re.compile(r"\b(confirm\w*|bestatig\w*)\b"),
}

#: Wording of a later message that says the action happened, by action.
_DONE: dict[str, re.Pattern[str]] = {
    "call": re.compile(
        r"\b(calling you|called you|just called|tried to call|thanks for the call"
        r"|te estoy llamando|te llame|te llamo ahora|gracias por la llamada"
        r"|estou ligando|liguei|te liguei|obrigad[oa] pela ligacao"
        r"|rufe (dich|sie) (jetzt|gerade) an|habe (dich|sie) angerufen|danke fur(s| das) telefonat"
        r"|je t'appelle maintenant|je vous appelle maintenant|je t'ai appele|merci pour l'appel)\b"
    ),
    "send": re.compile(
        r"\b(attached|attaching|here is|here it is|here's|heres|sent you|just sent|i've sent|i have sent"
        r"|adjunto|te envie|le envie|te mande|aqui tienes|aqui esta"
        r"|segue|anexo|enviei|te mandei"
        r"|anbei|im anhang|habe (dir|ihnen) .{0,40}geschickt|hier (ist|sind)"
        r"|ci-joint|en piece jointe|voici|je t'ai envoye|je vous ai envoye)\b"
    ),
    "confirm": re.compile(
        r"\b(confirmed|we confirm|i confirm|confirmado|confirmada|confirmamos|confirmo el"
        r"|confirmo o|bestatigt|wir bestatigen|confirme|nous confirmons|je confirme)\b"
    ),
}

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
      has_file: Whether the message, or one from the same sender within
        five minutes of it, carries an attachment.
    """

    id: int
    direction: str
    sender_id: int | None
    text: str
    has_file: bool


def _folded(text: str) -> str:
    return fold(text).replace("\u2019", "'")


def action_of(source_text: str) -> str | None:
    """Return the action a promise or request names: call, send or confirm.

    Examples:
      >>> action_of("I'll call you tomorrow at 10")
      'call'
      >>> action_of("Can you send the quote by Friday 3pm?")
      'send'
      >>> action_of("Let's do a demo next Tuesday") is None
      True
    """
    folded = _folded(source_text)
    for action, pattern in _ACTIONS.items():
        if pattern.search(folded):
            return action

    return None


def fulfilling_message(
    source_text: str,
    promised_by: str,
    contact_id: int | None,
    later: Sequence[LaterMessage],
) -> LaterMessage | None:
    """Return the first of ``later`` that says the promise was kept, or None.

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

    wanted_objects = set(_OBJECTS.findall(_folded(source_text)))
    direction = "outbound" if promised_by == "user" else "inbound"
    for message in later:
        if message.direction != direction:
            continue
        if direction == "inbound" and contact_id is not None and message.sender_id not in (None, contact_id):
            continue

        folded = _folded(message.text)
        if not _DONE[action].search(folded):
            continue

        if action == "send" and wanted_objects:
            named = set(_OBJECTS.findall(folded))
            if not (named & wanted_objects) and not message.has_file:
                continue

        return message

    return None


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
        kept = fulfilling_message(source.body, reminder.promised_by, reminder.contact_id, after)
        if kept is None:
            continue

        Reminder.update(status="done").where(Reminder.id == reminder.id).execute()
        logger.info(
            "Marked reminder %s of user %s done because message %s reports the promise kept.",
            reminder.id, reminder.user_id, kept.id,
        )
        closed.append(reminder.id)

    return closed


def _later_messages(rows: Sequence[MessageRow]) -> list[tuple[MessageRow, LaterMessage]]:
    ordered = sorted(rows, key=lambda row: (row.sent_at, row.id))
    with_files = {
        row.message_id
        for row in Attachment.select(Attachment.message).where(
            Attachment.message.in_([row.id for row in ordered])
        )
    }
    file_times: dict[tuple[str, int | None], list[datetime]] = defaultdict(list)
    for row in ordered:
        if row.id in with_files:
            file_times[(row.direction, row.sender_id)].append(row.sent_at)

    result = []
    for row in ordered:
        has_file = any(
            abs((moment - row.sent_at).total_seconds()) <= FILE_WINDOW_S
            for moment in file_times[(row.direction, row.sender_id)]
        )
        result.append(
            (row, LaterMessage(row.id, row.direction, row.sender_id, row.body or "", has_file))
        )

    return result
