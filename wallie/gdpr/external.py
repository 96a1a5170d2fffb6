"""Personal data outside the database: media files, ``.eml`` files, Redis keys.

Naming rules that deletion relies on:

- Every Redis key that belongs to one user contains ``:user:{user_id}:``
  (for example ``wallie:debounce:sync_chat:user:42:conversation:7`` or
  ``wallie:limit:cap:user:42:openai_calls:2026-03-08``), so
  :func:`delete_redis_keys` finds them with ``SCAN MATCH *:user:{id}:*``.
- A user's media files live under :func:`user_media_dir`
  (``media/users/{user_id}/``), and :attr:`Attachment.path` is relative to
  the media folder.  Deletion removes each attachment's file and then the
  user's folder.
- Outbox mail is written as ``{sha256(key)[:24]}.eml``; deletion removes the
  file of each deleted outbox item and every ``.eml`` whose ``To`` header is
  the deleted user's address.
- A user's uploads live under :func:`user_upload_dir`
  (``uploads/users/{user_id}/``) as ``{sha256[:16]}-{name}``, so an
  import's upload is found by :attr:`Import.sha256`.  A batch import's chunk
  files live in ``media/imports/{import_id}/``.  Deleting an import removes
  both; deleting an account also removes the user's uploads folder, which
  contains the uploads of failed imports too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

import redis

from ..logging import get_logger
from ..notify.transports import eml_file_name
from ..settings import Settings

logger = get_logger(__name__)

#: Keys fetched per SCAN call and deleted per UNLINK call.
REDIS_SCAN_COUNT = 1000


def user_key_part(user_id: int) -> str:
    """Return the part that every per-user Redis key contains: ``:user:{user_id}:``."""
    return f":user:{user_id}:"


def user_key_pattern(user_id: int) -> str:
    """Return the ``SCAN MATCH`` pattern of every Redis key of ``user_id``."""
    return f"*{user_key_part(user_id)}*"


def user_media_dir(settings: Settings, user_id: int) -> Path:
    """Return the folder where the media files of ``user_id`` are stored."""
    return settings.media_dir / "users" / str(user_id)


def _client(settings: Settings) -> redis.Redis | None:
    if settings.redis_url is None:
        return None

    return redis.Redis.from_url(settings.redis_url)


def count_redis_keys(settings: Settings, user_id: int) -> int:
    """Return how many Redis keys belong to ``user_id``; 0 without Redis."""
    client = _client(settings)
    if client is None:
        return 0

    try:
        pattern = user_key_pattern(user_id)
        return sum(1 for _ in client.scan_iter(match=pattern, count=REDIS_SCAN_COUNT))
    finally:
        client.close()


def delete_redis_keys(settings: Settings, user_id: int) -> int:
    """Delete every Redis key of ``user_id`` and return how many were deleted."""
    client = _client(settings)
    if client is None:
        return 0

    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=user_key_pattern(user_id), count=REDIS_SCAN_COUNT):
            batch.append(key)
            if len(batch) >= REDIS_SCAN_COUNT:
                deleted += client.unlink(*batch)
                batch = []

        if batch:
            deleted += client.unlink(*batch)
    finally:
        client.close()

    logger.info("Deleted %d Redis keys of user %d.", deleted, user_id)
    return deleted


def media_path(settings: Settings, relative: str) -> Path | None:
    """Return the absolute path of a media file, or None if it is empty or leaves the folder.

    A path that resolves outside the media folder (``../``, an absolute path)
    is never deleted: it cannot be a file Wallie stored.
    """
    if not relative:
        return None

    root = settings.media_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or path == root:
        logger.warning("Ignored the media path %r, which is outside the media folder.", relative)
        return None

    return path


def remove_media_files(settings: Settings, relative_paths: Iterable[str]) -> int:
    """Remove the media files at ``relative_paths``; return how many paths were handled.

    A file that is already gone counts as removed, so a resumed deletion
    reports the same total as one that ran straight through.
    """
    removed = 0
    for relative in relative_paths:
        path = media_path(settings, relative)
        if path is None:
            continue

        path.unlink(missing_ok=True)
        removed += 1

    return removed


def count_media_files(settings: Settings, relative_paths: Iterable[str]) -> int:
    """Return how many of ``relative_paths`` name a media file deletion would remove."""
    return sum(1 for relative in relative_paths if media_path(settings, relative) is not None)


def remove_user_media_dir(settings: Settings, user_id: int) -> int:
    """Remove the user's media folder; return how many files it still held."""
    folder = user_media_dir(settings, user_id)
    if not folder.is_dir():
        return 0

    files = sum(1 for path in folder.rglob("*") if path.is_file())
    shutil.rmtree(folder)
    return files


def user_media_files(settings: Settings, user_id: int) -> list[Path]:
    """Return the resolved paths of the files in the user's media folder."""
    folder = user_media_dir(settings, user_id)
    if not folder.is_dir():
        return []

    return [path.resolve() for path in folder.rglob("*") if path.is_file()]


def user_upload_dir(settings: Settings, user_id: int) -> Path:
    """Return the folder where the uploads of ``user_id`` are staged."""
    # Imported here because the importers import this module.
    from ..knowledge.uploads import user_uploads_key

    return settings.home / user_uploads_key(user_id)


def _files_inside_home(settings: Settings, folder: Path) -> list[Path]:
    """Return the resolved files under ``folder``, or [] if it leaves ``WALLIE_HOME``."""
    home = settings.home.resolve()
    if not folder.is_dir():
        return []

    resolved = folder.resolve()
    if not resolved.is_relative_to(home) or resolved == home:
        logger.warning("Ignored the folder %s, which is outside WALLIE_HOME.", folder)
        return []

    return [path.resolve() for path in resolved.rglob("*") if path.is_file()]


def user_upload_files(settings: Settings, user_id: int) -> list[Path]:
    """Return the resolved paths of the files in the user's uploads folder."""
    return _files_inside_home(settings, user_upload_dir(settings, user_id))


def remove_user_upload_dir(settings: Settings, user_id: int) -> int:
    """Remove the user's uploads folder; return how many files it still held."""
    files = user_upload_files(settings, user_id)
    if files:
        shutil.rmtree(user_upload_dir(settings, user_id).resolve())

    return len(files)


def import_files(settings: Settings, user_id: int, import_id: int, sha256: str) -> list[Path]:
    """Return the resolved files of one import: its staged upload and its chunk files.

    The upload is any file named ``{sha256[:16]}-*`` in the user's uploads
    folder, or in the ``uploads`` folder itself, where uploads were staged
    before they were kept per user.
    """
    # Imported here because the importers import this module.
    from ..knowledge.uploads import UPLOADS
    from ..whatsapp.importer import chunk_folder

    found = _files_inside_home(settings, chunk_folder(settings, import_id))
    if len(sha256) < 16:
        return found

    # NOTE: a file in the shared ``uploads`` folder with this digest may also
    # be the staged copy of another user's identical file.  It is removed too,
    # so that user's import, if it has not run yet, fails with "no such file".
    prefix = f"{sha256[:16]}-"
    for folder in (user_upload_dir(settings, user_id), settings.home / UPLOADS):
        found += [
            path
            for path in _files_inside_home(settings, folder)
            if path.parent == folder.resolve() and path.name.startswith(prefix)
        ]

    return found


def remove_import_files(settings: Settings, user_id: int, import_id: int, sha256: str) -> int:
    """Remove the files of one import (see :func:`import_files`); return how many."""
    files = import_files(settings, user_id, import_id, sha256)
    for path in files:
        path.unlink(missing_ok=True)

    from ..whatsapp.importer import chunk_folder

    folder = chunk_folder(settings, import_id)
    if folder.is_dir() and folder.resolve().is_relative_to(settings.home.resolve()):
        shutil.rmtree(folder.resolve())

    return len(files)


def outbox_file_paths(settings: Settings, keys: Iterable[str]) -> list[Path]:
    """Return the existing ``.eml`` files of the outbox items with idempotency ``keys``."""
    paths = (settings.outbox_dir / eml_file_name(key) for key in keys)
    return [path.resolve() for path in paths if path.exists()]


def remove_outbox_files(settings: Settings, keys: Iterable[str]) -> int:
    """Remove the ``.eml`` files of the outbox items with idempotency ``keys``."""
    removed = 0
    for key in keys:
        path = settings.outbox_dir / eml_file_name(key)
        if path.exists():
            path.unlink(missing_ok=True)
            removed += 1

    return removed


def outbox_files_to(settings: Settings, address: str) -> list[Path]:
    """Return the ``.eml`` files in the outbox folder addressed to ``address``.

    Only the headers are parsed; the comparison ignores case.
    """
    folder = settings.outbox_dir
    if not folder.is_dir() or not address:
        return []

    wanted = address.strip().lower()
    parser = BytesHeaderParser(policy=policy.default)
    found = []
    for path in sorted(folder.glob("*.eml")):
        with path.open("rb") as stream:
            headers = parser.parse(stream)

        recipients = getaddresses(headers.get_all("To", []) + headers.get_all("Cc", []))
        if any(email.strip().lower() == wanted for _, email in recipients):
            found.append(path)

    return found


def remove_outbox_files_to(settings: Settings, address: str) -> int:
    """Remove every ``.eml`` file in the outbox folder addressed to ``address``."""
    paths = outbox_files_to(settings, address)
    for path in paths:
        path.unlink(missing_ok=True)

    return len(paths)
