"""Fixed phrases that WhatsApp writes into exports, in several languages.

The English, German, Portuguese and Spanish phrases were checked against real
exports. The Dutch ones and the less common media placeholders follow the
WhatsApp interface wording and are best effort.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from wallie.whatsapp.model import Attachment, AttachmentKind

_I = re.IGNORECASE


def _first_on_line(word: str) -> str:
    """Build regex source that matches a line from its start to its first ``word``.

    A search for ``\\bword\\b.*\\bother\\b`` tries ``.*`` from every ``word``
    of a line, in time quadratic in the line's length. The atomic group
    commits to the first ``word``, which finds ``other`` whenever a later one
    does, so each line is read once.
    """
    return rf"(?:^|(?<=\n))(?>.*?\b{word}\b)"


#: System events recognised in lines without a sender, first match wins.
_SYSTEM_EVENTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, _I))
    for name, pattern in (
        (
            "encryption",
            r"end-to-end|ende-zu-ende|ponta a ponta|extremo a extremo"
            r"|end-to-end-versleuteld",
        ),
        (
            "disappearing_messages",
            r"disappearing messages|message timer|selbstlöschende nachrichten"
            r"|verschwindende nachrichten|mensagens temporárias|mensajes temporales"
            r"|verdwijnende berichten",
        ),
        (
            "security_code",
            r"security code|sicherheitsnummer|código de segurança"
            r"|código de seguridad|beveiligingscode",
        ),
        (
            "business",
            r"business account|this business|conta comercial|cuenta (?:de empresa"
            r"|comercial)|unternehmenskonto|zakelijk account|service from meta",
        ),
        (
            "group_created",
            r"\bcreated (?:the )?group\b|\bcreated this group\b"
            rf"|{_first_on_line('gruppe')}.*\berstellt\b"
            r"|\bcriou (?:o |este )?grupo\b|\bcreó (?:el )?grupo\b"
            rf"|{_first_on_line('groep')}.*\baangemaakt\b",
        ),
        (
            "joined",
            r"joined using this group's invite link|einladungslink"
            r"|link de convite|enlace de invitación|uitnodigingslink",
        ),
        (
            "subject_changed",
            r"changed the (?:group name|subject)|changed the group name"
            r"|gruppennamen|\bbetreff\b|nome do grupo|asunto|nombre del grupo"
            r"|onderwerp|groepsnaam",
        ),
        (
            "icon_changed",
            r"group's icon|group icon|group photo|gruppenbild|imagem do grupo"
            r"|(?:imagen|foto|ícono) del grupo|groepsafbeelding|groepsicoon",
        ),
        (
            "description_changed",
            r"group description|gruppenbeschreibung|descrição do grupo"
            r"|descripción del grupo|groepsbeschrijving",
        ),
        ("number_changed", r"changed (?:their|to a new) phone number|neue nummer"),
        ("admin", r"\badmin\b"),
        (
            "added",
            r"\badded\b|you were added|hinzugefügt|\badicion|adicionado|añadió"
            r"|agregó|toegevoegd",
        ),
        (
            "removed",
            r"\bremoved\b|\bentfernt\b|\bremoveu\b|removid[oa]|\beliminó a\b"
            r"|verwijderd",
        ),
        (
            "left",
            r"\bleft$|verlassen|\bsaiu\b|\bsalió\b|\bverlaten\b|is vertrokken",
        ),
    )
)

#: Notices that iOS writes with the group name, or the person, as the sender.
#: Only these complete one-line bodies turn a "Name: text" line into a system
#: event, because a person could type any of the looser phrases above. One
#: alternation with named groups costs a single match per message.
_SENDER_SYSTEM_EVENTS = re.compile(
    "|".join(
        f"(?P<{name}>{pattern})"
        for name, pattern in (
            (
                "encryption",
                r"(?:messages and calls|messages to this|messages you send"
                r"|nachrichten und anrufe|as mensagens|los mensajes|berichten en) "
                r".*(?:end-to-end|ende-zu-ende|ponta a ponta|extremo a extremo).*",
            ),
            ("added", r".{1,100} added you|you were added"),
            ("joined", r".{1,100} joined using this group's invite link"),
            ("group_created", r".{1,100} created (?:the )?group\b.*"),
            ("security_code", r"your security code with .* changed.*"),
            (
                "disappearing_messages",
                r".{1,100} turned (?:on|off) disappearing messages.*",
            ),
        )
    ),
    _I,
)

#: First characters of the notices of ``_SENDER_SYSTEM_EVENTS`` that start
#: with fixed words ("Messages and calls …", "Your security code …", and the
#: translations), in both cases. No other character matches these letters
#: case-insensitively.
NOTICE_FIRST = frozenset("mMnNaAlLbByY")

#: Last characters of the notices that end with fixed words ("… added you",
#: "You were added", "… invite link"), in both cases, and the Kelvin sign,
#: which matches "k" case-insensitively. The other notices contain
#: " created … group" or " turned … disappearing messages", so a "g" or "G"
#: and a "d " or "D ".
NOTICE_LAST = frozenset("uUdDkK\u212a")

#: Longest body checked against ``_SENDER_SYSTEM_EVENTS``, in characters.
MAX_NOTICE_LENGTH = 400

#: Words of which every notice of ``_SENDER_SYSTEM_EVENTS`` contains one, in
#: lower case. Looking for them is far cheaper than the case-insensitive
#: match, which then runs only for the few bodies that contain one.
NOTICE_WORDS = (
    "end-to-end", "ende-zu-ende", "ponta a ponta", "extremo a extremo", "added",
    "joined", "created", "security", "disappearing",
)

#: Dotted and dotless I and long S, which match an ASCII letter in the
#: case-insensitive pattern but do not lower-case to it, so a body holding
#: one may be a notice without holding any of ``NOTICE_WORDS``. (The Kelvin
#: sign lower-cases to "k".)
NOTICE_CASE_TRAPS = "\u0130\u0131\u017f"

#: Endings of every placeholder line, checked before the placeholder patterns
#: because one ``endswith`` call is far cheaper than four regex matches.
_PLACEHOLDER_ENDINGS = (
    ">", ")", "omitted", "weggelassen", "ocultado", "ocultada", "oculto", "oculta",
    "omitido", "omitida", "weggelaten",
)

#: Characters that can end a placeholder line: the last characters of
#: ``_PLACEHOLDER_ENDINGS`` and their capitals, the only characters that
#: ``str.lower()`` turns into them.
PLACEHOLDER_LAST = frozenset(">)dDnNoOaA")

#: Bodies that replace a deleted message, matched on the whole body.
_DELETED = re.compile(
    r"(?:this message was deleted|you deleted this message"
    r"|diese nachricht wurde gelöscht|du hast diese nachricht gelöscht"
    r"|mensagem apagada|esta mensagem foi apagada|você apagou esta mensagem"
    r"|se eliminó este mensaje|eliminaste este mensaje|este mensaje fue eliminado"
    r"|dit bericht is verwijderd|je hebt dit bericht verwijderd)\.?",
    _I,
)

#: Marker appended to an edited message, with the spaces before it. The
#: lookbehind starts a match only where a run of spaces starts, so a search
#: in a long run reads it once rather than once per space.
_EDITED = re.compile(
    r"(?<![ \u00a0])[ \u00a0]*<(?:this message was edited"
    r"|diese nachricht wurde bearbeitet|mensagem editada|se editó este mensaje\.?"
    r"|dit bericht is bewerkt)>$",
    _I,
)

#: Placeholder for media left out of an export without a file name.
_MEDIA_OMITTED = re.compile(
    r"<(?:media omitted|medien ausgeschlossen|mídia oculta|arquivo de mídia oculto"
    r"|multimedia omitido|media weggelaten)>",
    _I,
)

#: iOS placeholder naming the type of the media left out.
_TYPED_OMITTED = re.compile(
    r"(?P<what>image|video|audio|sticker|document|gif|contact card|bild|dokument"
    r"|imagem|vídeo|áudio|figurinha|documento|imagen|afbeelding)"
    r" (?:omitted|weggelassen|ocultad[oa]|ocult[oa]|omitid[oa]|weggelaten)",
    _I,
)

#: iOS attachment with its file name. The name group keeps the whitespace
#: around the name for the caller to strip, because a lazy name between two
#: ``\s*`` took time cubic in the length of a line of spaces.
_ATTACHED = re.compile(
    r"<(?:attached|anhang|anexo|adjunto|bijlage|allegato|pièce jointe):"
    r"(?P<name>[^>]+)>",
    _I,
)

#: Android attachment with its file name.
_FILE_ATTACHED = re.compile(
    r"(?P<name>\S.*?) \((?:file attached|datei angehängt|arquivo anexado"
    r"|archivo adjunto|bestand bijgevoegd|file allegato|fichier joint)\)",
    _I,
)

#: A location pin, a URL after a localised "location:" label.
_LOCATION = re.compile(
    r"(?:location|standort|localização|ubicación|locatie): https?://\S+", _I
)

#: A live location share notice.
_LIVE_LOCATION = re.compile(
    r"live location shared|live-standort wird geteilt\.?"
    r"|localização em tempo real compartilhada|ubicación en tiempo real compartida"
    r"|live-locatie gedeeld",
    _I,
)

#: Last characters of the deletion and live location notices, in both cases,
#: with the optional final full stop.
SHORT_NOTICE_LAST = frozenset("dDeEtTaAmMoO.")

#: Last characters of a line that can be a placeholder or end with a marker
#: such as an edit notice: ``PLACEHOLDER_LAST``, ">", and "" for an empty line.
MARKER_LAST = frozenset((*PLACEHOLDER_LAST, ">", ""))

#: Length below which a whole body can be a deletion or live location notice,
#: in characters.
SHORT_NOTICE_LENGTH = 50

#: Either of the whole-body notices, for a single check on plain bodies.
SHORT_NOTICE = re.compile(f"(?:{_DELETED.pattern})|(?:{_LIVE_LOCATION.pattern})", _I)

_PLACEHOLDER_KINDS: dict[str, AttachmentKind] = {
    "image": "image",
    "bild": "image",
    "imagem": "image",
    "imagen": "image",
    "afbeelding": "image",
    "gif": "video",
    "video": "video",
    "vídeo": "video",
    "audio": "audio",
    "áudio": "audio",
    "sticker": "sticker",
    "figurinha": "sticker",
    "document": "document",
    "dokument": "document",
    "documento": "document",
    "contact card": "document",
}

_EXTENSION_KINDS: dict[str, AttachmentKind] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "heic", "heif", "bmp"), "image"),
    **dict.fromkeys(("mp4", "mov", "3gp", "avi", "mkv", "m4v", "webm"), "video"),
    **dict.fromkeys(("opus", "ogg", "m4a", "mp3", "aac", "amr", "wav"), "audio"),
    "webp": "sticker",
    **dict.fromkeys(
        ("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv", "vcf",
         "odt", "ods", "rtf", "zip"),
        "document",
    ),
}

#: Kind implied by the name WhatsApp gives a media file, checked before the
#: extension because ``STK-…webp`` is a sticker and ``PTT-…`` a voice note.
_NAME_KINDS: tuple[tuple[str, AttachmentKind], ...] = (
    ("STK-", "sticker"),
    ("-STICKER-", "sticker"),
    ("PTT-", "audio"),
    ("AUD-", "audio"),
    ("-AUDIO-", "audio"),
    ("IMG-", "image"),
    ("-PHOTO-", "image"),
    ("VID-", "video"),
    ("-VIDEO-", "video"),
    ("DOC-", "document"),
)


@dataclass(frozen=True, slots=True)
class Body:
    """A message body after its WhatsApp markers were read."""

    text: str
    attachments: tuple[Attachment, ...] = ()
    is_deleted: bool = False
    is_edited: bool = False
    is_location: bool = False


def classify_system_event(text: str) -> str:
    """Name the system event that ``text``, a line without a sender, reports.

    Returns:
      A short event name, or ``"other"`` when no phrase matches.
    """
    for name, pattern in _SYSTEM_EVENTS:
        if pattern.search(text):
            return name

    return "other"


def _may_be_notice(lowered: str) -> bool:
    """Return True when a lower-cased body contains one of ``NOTICE_WORDS``."""
    return any(word in lowered for word in NOTICE_WORDS)


def sender_system_event(body: str) -> str | None:
    """Name the system event in a one-line body written under a sender name.

    Returns:
      The event name, or None when the body reads as an ordinary message.
    """
    if "\n" in body or len(body) > MAX_NOTICE_LENGTH:
        return None

    if not (
        body[:1] in NOTICE_FIRST
        or body[-1:] in NOTICE_LAST
        or (("g" in body or "G" in body) and ("d " in body or "D " in body))
    ):
        return None

    if not _may_be_notice(body.lower()) and (
        body.isascii() or not any(trap in body for trap in NOTICE_CASE_TRAPS)
    ):
        return None

    match = _SENDER_SYSTEM_EVENTS.fullmatch(body)
    return match.lastgroup if match else None


def attachment_for_file(name: str) -> Attachment:
    """Build the attachment for a media file name written in an export."""
    kind: AttachmentKind = "other"
    for marker, marker_kind in _NAME_KINDS:
        if marker in name:
            kind = marker_kind
            break
    else:
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        kind = _EXTENSION_KINDS.get(extension, "other")

    voice_note = name.lower().endswith(".opus") or name.startswith("PTT-")
    return Attachment(kind=kind, file_name=name, needs_transcription=voice_note)


def _placeholder(line: str) -> Attachment | None:
    """Return the attachment that a whole body line stands for, if any."""
    if not line.lower().endswith(_PLACEHOLDER_ENDINGS):
        return None

    match = _ATTACHED.fullmatch(line) or _FILE_ATTACHED.fullmatch(line)
    if match:
        return attachment_for_file(match["name"].strip())

    if _MEDIA_OMITTED.fullmatch(line):
        return Attachment(kind="other")

    match = _TYPED_OMITTED.fullmatch(line)
    if match:
        return Attachment(kind=_PLACEHOLDER_KINDS[match["what"].lower()])

    return None


def special_body(text: str) -> Body | None:
    """Read a body like :func:`read_body`, or return None when it has no marker.

    Cheap checks rule out every marker for most bodies, which then need no
    :class:`Body`: the caller uses the text as it is.
    """
    if "\n" not in text:
        last = text[-1:]
        if not (
            last in MARKER_LAST
            or last in SHORT_NOTICE_LAST
            or last.isspace()
            or ": http" in text
        ):
            return None

    if len(text) < SHORT_NOTICE_LENGTH and SHORT_NOTICE.fullmatch(text):
        return read_body(text)

    if text.endswith(">") or ": http" in text:
        return read_body(text)

    newline = text.find("\n")
    first = text if newline < 0 else text[:newline]
    last = first.rstrip()[-1:]
    if not last or last in PLACEHOLDER_LAST:
        return read_body(text)

    return None


# Placeholders and deletion notices repeat word for word through a chat, and
# a Body is immutable, so the last few readings are kept.
@functools.lru_cache(maxsize=256)
def read_body(text: str) -> Body:
    """Read deletion notices, edit markers, media placeholders and locations.

    Parameters:
      text: The message body with format marks already removed.

    Returns:
      The body text without the markers, and what the markers stood for.

    Note:
      A placeholder is recognised only as the whole first line of a body, so a
      caption on the following lines stays as text.
    """
    if len(text) < SHORT_NOTICE_LENGTH and _DELETED.fullmatch(text):
        return Body(text="", is_deleted=True)

    is_edited = False
    edited = _EDITED.search(text) if text.endswith(">") else None
    if edited:
        text = text[: edited.start()]
        is_edited = True

    first, newline, rest = text.partition("\n")
    attachment = _placeholder(first.strip())
    if attachment is not None:
        return Body(text=rest, attachments=(attachment,), is_edited=is_edited)

    is_location = bool(
        (": http" in text and _LOCATION.match(text))
        or (len(text) < SHORT_NOTICE_LENGTH and _LIVE_LOCATION.fullmatch(text))
    )
    return Body(text=text, is_edited=is_edited, is_location=is_location)
