"""Turn uploaded documents into knowledge text, and contact lists into contacts.

Text, Markdown, PDF, DOCX and CSV files become :class:`KnowledgeDocument`
rows holding their extracted text. A CSV file whose header names a contact
column (name, phone, email, company, in a few languages) and vCard files
become contacts instead, matched to existing ones by phone, email or name.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wallie.db.fields import utcnow
from wallie.db.models import Import, KnowledgeDocument, User
from wallie.errors import WallieError
from wallie.logging import get_logger
from wallie.storage import find_or_create_contact
from wallie.whatsapp.importer import file_digest, region_of
from wallie.whatsapp.phones import normalize_phone

logger = get_logger(__name__)

#: Maximum size of a document, in bytes (50 MiB).
MAX_DOCUMENT_BYTES = 50 << 20

#: Content type per file extension of the document kinds read.
CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".csv": "text/csv",
    ".vcf": "text/vcard",
}

#: Header names of contact columns, lower-cased, in English, Portuguese,
#: Spanish, French, German and Dutch.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full name", "contact", "nome", "nombre", "nom", "naam",
             "first name", "given name"),
    "last_name": ("last name", "family name", "surname", "sobrenome", "apellido",
                  "nachname", "achternaam"),
    "phone": ("phone", "phone number", "mobile", "telephone", "tel", "telefone",
              "celular", "teléfono", "telefono", "móvil", "téléphone", "portable",
              "telefon", "handy", "telefoon", "whatsapp"),
    "email": ("email", "e-mail", "email address", "mail", "correo", "courriel"),
    "company": ("company", "organization", "organisation", "empresa", "compañía",
                "société", "entreprise", "firma", "unternehmen", "bedrijf"),
}


class DocumentError(WallieError):
    """Raised when a document cannot be read.

    Attributes:
      file: The file name.
      problem: What is wrong with it.
    """

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"Cannot import {file}: {problem}.")
        self.file = file
        self.problem = problem


#: A plausible email address: one ``@``, no spaces, a dot in the domain.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


@dataclass(slots=True)
class DocumentResult:
    """Outcome of a document import.

    Attributes:
      import_id: The ``Import`` row.
      kind: ``"document"`` or ``"contacts"``.
      document_id: The knowledge document, for a document.
      characters: Characters of text extracted.
      contacts_created: Contacts that did not exist before.
      contacts_matched: Contacts found by phone, email or name.
      skipped_rows: Contact rows without a name, phone or email.
      invalid_values: Emails and phone numbers dropped because they are not
        valid; the rest of their row is kept.
    """

    import_id: int
    kind: str
    document_id: int | None = None
    characters: int = 0
    contacts_created: int = 0
    contacts_matched: int = 0
    skipped_rows: int = 0
    invalid_values: int = 0
    contact_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the result as the mapping of ``import document --json``."""
        return {
            "import_id": self.import_id,
            "kind": self.kind,
            "document_id": self.document_id,
            "characters": self.characters,
            "contacts_created": self.contacts_created,
            "contacts_matched": self.contacts_matched,
            "skipped_rows": self.skipped_rows,
            "invalid_values": self.invalid_values,
        }


@dataclass(frozen=True, slots=True)
class ContactCard:
    """One contact read from a CSV row or a vCard."""

    name: str = ""
    phone: str | None = None
    email: str | None = None
    company: str = ""


def import_document(user: User, path: str | Path, *, source_name: str | None = None
                    ) -> DocumentResult:
    """Import a document or a contact list for ``user``.

    Parameters:
      user: The owner.
      path: The file; its extension picks the reader.
      source_name: Name shown for the file, by default its file name.

    Returns:
      What was stored.

    Raises:
      DocumentError: For an unknown type, an unreadable, encrypted or empty
        document, or a contact list without a contact; nothing is stored.
    """
    path = Path(path)
    name = source_name or path.name
    suffix = path.suffix.lower()
    if suffix not in CONTENT_TYPES:
        known = ", ".join(sorted(CONTENT_TYPES))
        raise DocumentError(name, f"unknown type {suffix or '(no extension)'}; "
                                  f"import one of {known}")
    if not path.is_file():
        raise DocumentError(name, "no such file")
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        raise DocumentError(name, f"larger than {MAX_DOCUMENT_BYTES >> 20} MiB")

    cards = _contact_cards(path, name, suffix)
    if cards is not None:
        return _store_contacts(user, path, name, cards)

    text = _extract_text(path, name, suffix)
    if not text.strip():
        raise DocumentError(name, "the document is empty or contains no text")

    return _store_document(user, path, name, CONTENT_TYPES[suffix], text)


def _create_import(user: User, path: Path, name: str, kind: str) -> Import:
    sha256, size = file_digest(path)
    return Import.create(user=user, kind=kind, source_name=name[:500], sha256=sha256,
                         size_bytes=size, processed_bytes=size, status="running")


def _store_document(user: User, path: Path, name: str, content_type: str,
                    text: str) -> DocumentResult:
    database = Import._meta.database
    with database.atomic():
        row = _create_import(user, path, name, "document")
        document = KnowledgeDocument.create(user=user, source_import=row, title=name[:500],
                                            content_type=content_type, text=text)
        stats = {"characters": len(text), "document_id": document.id}
        Import.update(status="done", stats=stats, finished_at=utcnow()).where(
            Import.id == row.id).execute()

    logger.info("Stored document %s of import %s for user %s.", document.id, row.id, user.id)
    return DocumentResult(row.id, "document", document_id=document.id,
                          characters=len(text))


def _store_contacts(user: User, path: Path, name: str,
                    cards: list[ContactCard]) -> DocumentResult:
    region = region_of(user.locale)
    checked = []
    invalid = 0
    for card in cards:
        phone = normalize_phone(card.phone, region) if card.phone else None
        email = card.email if card.email and _EMAIL.fullmatch(card.email) else None
        invalid += (card.phone is not None and phone is None) + (card.email is not None and email is None)
        checked.append((card, phone, email))

    usable = [item for item in checked if item[0].name or item[1] or item[2]]
    if not usable:
        raise DocumentError(name, "no row has a name, a valid phone number or a valid email")

    database = Import._meta.database
    with database.atomic():
        row = _create_import(user, path, name, "contacts")
        result = DocumentResult(row.id, "contacts", skipped_rows=len(cards) - len(usable),
                                invalid_values=invalid)
        for card, phone, email in usable:
            before = user.contacts.count()
            contact = find_or_create_contact(
                user, name=card.name, phone=phone, email=email, company=card.company,
            )
            if user.contacts.count() > before:
                result.contacts_created += 1
            else:
                result.contacts_matched += 1
            result.contact_ids.append(contact.id)
        Import.update(status="done", stats=result.as_dict(), finished_at=utcnow()).where(
            Import.id == row.id).execute()

    logger.info("Imported %d contacts from import %s for user %s.",
                len(usable), row.id, user.id)
    return result


# Text extraction.


def _read_text(path: Path, name: str) -> str:
    data = path.read_bytes()
    for codec in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else (
            "utf-8-sig", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise DocumentError(name, "the text is neither UTF-8 nor Windows-1252")


def _extract_text(path: Path, name: str, suffix: str) -> str:
    if suffix == ".pdf":
        return _pdf_text(path, name)
    if suffix == ".docx":
        return _docx_text(path, name)
    if suffix == ".vcf":
        raise DocumentError(name, "the vCard file holds no BEGIN:VCARD entry")
    return _read_text(path, name)


def _pdf_text(path: Path, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise DocumentError(name, "the PDF is encrypted; export it without a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as error:
        raise DocumentError(name, f"the PDF is damaged ({error})") from error

    return "\n\n".join(page.strip() for page in pages if page.strip())


def _docx_text(path: Path, name: str) -> str:
    import zipfile

    import docx

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise DocumentError(name, "the DOCX file is damaged or not a Word document"
                            ) from error

    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(parts)


# Contact lists.


def _contact_cards(path: Path, name: str, suffix: str) -> list[ContactCard] | None:
    """Return the contacts of a contact list, or None when the file is a document."""
    if suffix == ".vcf":
        cards = parse_vcards(_read_text(path, name))
        return cards if cards else None
    if suffix == ".csv":
        return csv_contacts(_read_text(path, name))
    return None


def _column(header: str) -> str | None:
    folded = re.sub(r"[\s_]+", " ", header.strip().casefold())
    for column, names in COLUMN_NAMES.items():
        if folded in names:
            return column
    return None


def csv_contacts(text: str) -> list[ContactCard] | None:
    """Read a CSV contact list, or return None when no header names a contact column.

    The delimiter (comma, semicolon or tab) is detected from the header line.
    """
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not rows:
        return None

    columns = [_column(header) for header in rows[0]]
    if not any(column in ("phone", "email") for column in columns) and (
        "name" not in columns or "company" not in columns
    ):
        return None

    cards = []
    for values in rows[1:]:
        if not any(value.strip() for value in values):
            continue
        found: dict[str, str] = {}
        for column, value in zip(columns, values, strict=False):
            if column and value.strip() and column not in found:
                found[column] = value.strip()
        full = " ".join(part for part in (found.get("name"), found.get("last_name")) if part)
        cards.append(ContactCard(full, found.get("phone"), found.get("email"),
                                 found.get("company", "")))
    return cards


def _unfold(text: str) -> Iterator[str]:
    """Yield vCard content lines with folded continuation lines joined."""
    line = ""
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and line:
            line += raw[1:]
            continue
        if line:
            yield line
        line = raw
    if line:
        yield line


def _vcard_value(value: str) -> str:
    return re.sub(r"\\([,;\\nN])", lambda m: "\n" if m[1] in "nN" else m[1], value).strip()


def parse_vcards(text: str) -> list[ContactCard]:
    """Read the FN, N, TEL, EMAIL and ORG properties of every vCard in ``text``.

    A property's first value wins; TEL values marked ``PREF`` win over others.
    Folded lines (a line break then a space or tab) are joined first.
    """
    cards: list[ContactCard] = []
    current: dict[str, str] | None = None
    for line in _unfold(text):
        head, sep, value = line.partition(":")
        if not sep:
            continue
        parts = head.split(";")
        prop = parts[0].split(".")[-1].upper()
        params = ";".join(parts[1:]).upper()
        if prop == "BEGIN" and value.strip().upper() == "VCARD":
            current = {}
        elif prop == "END" and current is not None:
            cards.append(_card(current))
            current = None
        elif current is not None:
            _vcard_property(current, prop, params, value)
    return cards


def _vcard_property(current: dict[str, str], prop: str, params: str, value: str) -> None:
    if prop == "FN":
        current.setdefault("fn", _vcard_value(value))
    elif prop == "N":
        fields = [_vcard_value(part) for part in re.split(r"(?<!\\);", value)]
        family = fields[0] if fields else ""
        given = fields[1] if len(fields) > 1 else ""
        current.setdefault("n", " ".join(part for part in (given, family) if part))
    elif prop == "TEL":
        number = _vcard_value(value.removeprefix("tel:"))
        if "PREF" in params or "tel" not in current:
            current["tel"] = number
    elif prop == "EMAIL":
        current.setdefault("email", _vcard_value(value))
    elif prop == "ORG":
        current.setdefault("org", _vcard_value(re.split(r"(?<!\\);", value)[0]))


def _card(values: dict[str, str]) -> ContactCard:
    return ContactCard(values.get("fn") or values.get("n", ""), values.get("tel"),
                       values.get("email"), values.get("org", ""))
