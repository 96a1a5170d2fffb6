"""Uploaded files: where workers may read them, and which importer takes them."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wallie.db.models import User
from wallie.errors import NotFound, WallieError
from wallie.knowledge.documents import DocumentResult, import_document
from wallie.logging import get_logger
from wallie.settings import Settings
from wallie.whatsapp.errors import NoMessagesError, NotAnExportError
from wallie.whatsapp.importer import ImportResult, import_whatsapp, split_into_chunks

logger = get_logger(__name__)

#: Folder under ``WALLIE_HOME`` where the command line stages uploads.  Each
#: user's uploads live in ``uploads/users/{user_id}/``, so deleting an account
#: removes that folder.
UPLOADS = "uploads"


class UploadPathError(WallieError):
    """Raised when an upload path is outside ``WALLIE_HOME`` or is not a file.

    Attributes:
      path: The rejected path.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"Cannot read upload {path!r}: {problem}. Pass a storage key relative to "
            f"WALLIE_HOME, such as {UPLOADS}/users/7/chat.zip, or a path inside WALLIE_HOME."
        )
        self.path = path


@dataclass(slots=True)
class UploadOutcome:
    """Outcome of an upload.

    Attributes:
      kind: ``"whatsapp"`` or ``"document"``.
      whatsapp: The finished WhatsApp import, unless it was split into chunks.
      document: The finished document import.
      import_id: The ``Import`` row.
      chunks: Chunks of a batch import still to store, or 0.
    """

    kind: str
    import_id: int
    whatsapp: ImportResult | None = None
    document: DocumentResult | None = None
    chunks: int = 0


def resolve_upload(settings: Settings, path: str) -> Path:
    """Return the file that ``path`` names, rejecting anything outside ``WALLIE_HOME``.

    Raises:
      UploadPathError: When the path leaves ``WALLIE_HOME`` (symbolic links
        followed) or names no file.
    """
    home = settings.home.resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = home / candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(home):
        raise UploadPathError(path, "it is outside WALLIE_HOME")
    if not resolved.is_file():
        raise UploadPathError(path, "no such file")
    return resolved


def user_uploads_key(user_id: int) -> str:
    """Return the storage key of the folder that contains the uploads of ``user_id``."""
    return f"{UPLOADS}/users/{user_id}"


def stage_upload(settings: Settings, source: str | os.PathLike[str], user_id: int) -> str:
    """Copy a local file into the user's uploads folder and return its storage key.

    The key is ``uploads/users/{user_id}/{digest}-{name}``, where the digest
    is the first 16 hex digits of the file's SHA-256, so a file staged twice
    for one user lands on the same key.  GDPR deletion finds an import's
    upload by that digest (:attr:`Import.sha256`).
    """
    source = Path(source)
    digest = hashlib.sha256()
    with open(source, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    key = f"{user_uploads_key(user_id)}/{digest.hexdigest()[:16]}-{source.name}"
    target = settings.home / key
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target.with_suffix(target.suffix + ".part"))
        os.replace(target.with_suffix(target.suffix + ".part"), target)
    return key


def is_whatsapp_candidate(path: Path) -> bool:
    """True for files that may be WhatsApp exports: ``.zip`` and ``.txt``."""
    return path.suffix.lower() in (".zip", ".txt")


def import_upload(
    user_id: int,
    path: str,
    settings: Settings,
    *,
    me: str | None = None,
    date_order: str | None = None,
    **options: Any,
) -> UploadOutcome:
    """Import an uploaded file for a user: a WhatsApp export or a document.

    A ``.zip`` is a WhatsApp export; a ``.txt`` is one when it reads as an
    export, else a text document. An export of ``WALLIE_BATCH_IMPORT_BYTES``
    or more is split into chunks for the workers instead of stored here.

    Raises:
      NotFound: When the user does not exist.
      UploadPathError: When the path is outside ``WALLIE_HOME``.
      WhatsAppError, MeRequiredError, DocumentError: When the file is bad;
        nothing is stored.
    """
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise NotFound("user", user_id)

    file = resolve_upload(settings, path)
    name = options.get("source_name") or _display_name(file)
    if is_whatsapp_candidate(file):
        try:
            if file.stat().st_size >= settings.batch_import_bytes:
                import_id, chunks = split_into_chunks(
                    user, file, settings, me=me, date_order=date_order, source_name=name
                )
                return UploadOutcome("whatsapp", import_id, chunks=chunks)

            result = import_whatsapp(user, file, settings, me=me, date_order=date_order,
                                     source_name=name)
            return UploadOutcome("whatsapp", result.import_id, whatsapp=result)
        except NotAnExportError as error:
            if isinstance(error, NoMessagesError) or file.suffix.lower() == ".zip":
                raise
            logger.info("Upload %s is not a WhatsApp export; reading it as text.", name)

    document = import_document(user, file, source_name=name)
    return UploadOutcome("document", document.import_id, document=document)


def _display_name(file: Path) -> str:
    """Return the name of a staged upload without its digest prefix."""
    head, sep, rest = file.name.partition("-")
    if sep and len(head) == 16 and all(c in "0123456789abcdef" for c in head):
        return rest
    return file.name
