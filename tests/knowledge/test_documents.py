"""Documents become knowledge text; CSV and vCard contact lists become contacts."""

from __future__ import annotations

from pathlib import Path

import docx
import peewee
import pytest
from pypdf import PdfWriter

from wallie.db.models import Contact, Import, KnowledgeDocument
from wallie.knowledge.documents import DocumentError, import_document, parse_vcards
from wallie.storage import find_or_create_contact, get_or_create_user


def write_pdf(path: Path, text: str) -> Path:
    """Write a one-page PDF showing ``text`` in Helvetica, offsets computed here."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, content in enumerate(objects, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, content)
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    path.write_bytes(body)
    return path


@pytest.fixture
def user(db: peewee.Database) -> object:
    return get_or_create_user("sam@example.com", locale="en-US")[0]


def test_pdf_text_is_stored(user: object, tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "prices.pdf", "Oak Line costs 240 dollars")

    result = import_document(user, path)

    document = KnowledgeDocument.get_by_id(result.document_id)
    assert "Oak Line costs 240 dollars" in document.text
    assert document.content_type == "application/pdf"
    assert Import.get_by_id(result.import_id).status == "done"


def test_encrypted_pdf_is_refused(user: object, tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with open(path, "wb") as stream:
        writer.write(stream)

    with pytest.raises(DocumentError, match="locked.pdf: the PDF is encrypted"):
        import_document(user, path)

    assert Import.select().count() == 0


def test_damaged_pdf_names_the_file(user: object, tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4 nothing else")

    with pytest.raises(DocumentError, match="broken.pdf"):
        import_document(user, path)


def test_docx_paragraphs_and_tables(user: object, tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("Delivery terms")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Austin"
    table.rows[0].cells[1].text = "3 weeks"
    path = tmp_path / "terms.docx"
    document.save(str(path))

    result = import_document(user, path)

    text = KnowledgeDocument.get_by_id(result.document_id).text
    assert text == "Delivery terms\nAustin\t3 weeks"


def test_markdown_is_stored(user: object, tmp_path: Path) -> None:
    path = tmp_path / "faq.md"
    path.write_text("# FAQ\n\nWe ship in 3 weeks.\n", encoding="utf-8")

    result = import_document(user, path)

    assert KnowledgeDocument.get_by_id(result.document_id).content_type == "text/markdown"


def test_csv_without_contact_columns_is_a_document(user: object, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("product,price\nOak Line,240\n", encoding="utf-8")

    result = import_document(user, path)

    assert result.kind == "document"
    assert "Oak Line,240" in KnowledgeDocument.get_by_id(result.document_id).text


def test_empty_document_is_refused(user: object, tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("  \n", encoding="utf-8")

    with pytest.raises(DocumentError, match="empty.txt: the document is empty"):
        import_document(user, path)


def test_unknown_type_is_refused(user: object, tmp_path: Path) -> None:
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\0")

    with pytest.raises(DocumentError, match=r"photo.heic: unknown type \.heic"):
        import_document(user, path)


def test_csv_contacts_with_portuguese_headers(user: object, tmp_path: Path) -> None:
    # Given a semicolon list whose second row matches an existing contact by phone
    existing = find_or_create_contact(user, name="Marcos", phone="+14155550132")
    path = tmp_path / "clientes.csv"
    path.write_text(
        "Nome;Telefone;E-mail;Empresa\n"
        "Ana Souza;(415) 555-0101;ana@souza.example;Souza Imports\n"
        "Marcos Lima;+1 415 555 0132;;Souza Imports\n"
        ";;;\n",
        encoding="utf-8",
    )

    result = import_document(user, path)

    ana = Contact.get(Contact.email == "ana@souza.example")
    assert result.kind == "contacts"
    assert result.contacts_created == 1
    assert result.contacts_matched == 1
    assert ana.phone == "+14155550101"
    assert ana.company == "Souza Imports"
    assert result.contact_ids[1] == existing.id


def test_csv_invalid_email_and_phone_dropped(user: object, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "name,email,phone\n"
        "Ana Souza,not-an-email,+1 415 555 0101\n"
        "Bruno Costa,bruno@costa.example,12\n"
        ",also bad,\n",
        encoding="utf-8",
    )

    result = import_document(user, path)

    ana = Contact.get(Contact.name == "Ana Souza")
    bruno = Contact.get(Contact.name == "Bruno Costa")
    assert result.invalid_values == 3
    assert result.skipped_rows == 1
    assert result.contacts_created == 2
    assert ana.email is None
    assert ana.phone == "+14155550101"
    assert bruno.email == "bruno@costa.example"
    assert bruno.phone is None


def test_vcard_properties_and_folding(user: object, tmp_path: Path) -> None:
    path = tmp_path / "contacts.vcf"
    path.write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Souza;Ana;;;\r\nFN:Ana Souza\r\n"
        "ORG:Souza Imports;Purchasing\r\nTEL;TYPE=WORK:+1 415 555 0101\r\n"
        "TEL;TYPE=CELL,PREF:+1 415 555 0\r\n 199\r\n"
        "EMAIL;TYPE=INTERNET:ana@souza.exa\r\n mple\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lima;Marcos;;;\r\nEND:VCARD\r\n",
        encoding="utf-8",
    )

    result = import_document(user, path)

    ana = Contact.get(Contact.name == "Ana Souza")
    assert result.contacts_created == 2
    assert ana.phone == "+14155550199"
    assert ana.email == "ana@souza.example"
    assert ana.company == "Souza Imports"
    assert Contact.get_or_none(Contact.name == "Marcos Lima") is not None


def test_vcard_escapes() -> None:
    cards = parse_vcards("BEGIN:VCARD\nFN:Smith\\, John\nEND:VCARD\n")

    assert cards[0].name == "Smith, John"


def test_vcard_without_card_is_refused(user: object, tmp_path: Path) -> None:
    path = tmp_path / "nothing.vcf"
    path.write_text("hello\n", encoding="utf-8")

    with pytest.raises(DocumentError, match="nothing.vcf"):
        import_document(user, path)
