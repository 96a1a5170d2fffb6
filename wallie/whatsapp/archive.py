"""Safe reading of WhatsApp ``.zip`` exports: checks, chat lookup, extraction."""

from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wallie.logging import get_logger
from wallie.whatsapp.errors import (
    ArchiveLimitError,
    ChatNotFoundError,
    UnsafeArchiveError,
)

logger = get_logger(__name__)

#: Default maximum of the uncompressed size of all members, in bytes (2 GiB).
MAX_TOTAL_SIZE = 2 << 30

#: Default maximum of uncompressed size over compressed size, for the archive
#: and for each member larger than ``RATIO_MIN_SIZE``.
MAX_RATIO = 100.0

#: Members smaller than this are exempt from the ratio check, in bytes (1 MiB),
#: because tiny files of repeated text compress far better than media.
RATIO_MIN_SIZE = 1 << 20

#: Default maximum size of one extracted member, in bytes (512 MiB).
MAX_MEMBER_SIZE = 512 << 20

#: Size of the chunks copied during extraction, in bytes.
COPY_CHUNK_SIZE = 1 << 20

#: Chat file names that WhatsApp gives the text file, in several languages.
_CHAT_NAME = re.compile(
    r"_chat\.txt|.*(?:whatsapp|conversa|chat).*\.txt", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Limits checked before anything is read from a zip export.

    Attributes:
      max_total_size: Maximum uncompressed size of all members, in bytes.
      max_ratio: Maximum compression ratio, for the archive and for each member
        larger than ``ratio_min_size``.
      ratio_min_size: Members below this uncompressed size skip the per-member
        ratio check, in bytes.
    """

    max_total_size: int = MAX_TOTAL_SIZE
    max_ratio: float = MAX_RATIO
    ratio_min_size: int = RATIO_MIN_SIZE


def _check_name(source: str, info: zipfile.ZipInfo) -> None:
    """Reject absolute paths, parent references and symbolic links."""
    name = info.filename
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise UnsafeArchiveError(source, name, "absolute path")

    if ".." in parts:
        raise UnsafeArchiveError(source, name, "path leaves the archive with '..'")

    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(source, name, "symbolic link")


def check_archive(
    archive: zipfile.ZipFile, source: str, limits: ArchiveLimits | None = None
) -> None:
    """Check every member of a zip export before anything is extracted.

    Parameters:
      archive: The open archive.
      source: Name of the archive, for error messages.
      limits: Size and ratio limits, or None for the defaults.

    Raises:
      UnsafeArchiveError: For an absolute path, ``..`` or a symbolic link.
      ArchiveLimitError: When the total size or a compression ratio is too high.
    """
    limits = limits or ArchiveLimits()
    total = 0
    compressed = 0
    for info in archive.infolist():
        _check_name(source, info)
        total += info.file_size
        compressed += info.compress_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= limits.ratio_min_size and ratio > limits.max_ratio:
            raise ArchiveLimitError(
                source, info.filename, "compression ratio", ratio, limits.max_ratio
            )

    if total > limits.max_total_size:
        raise ArchiveLimitError(
            source, "", "total uncompressed size", total, limits.max_total_size
        )

    ratio = total / max(compressed, 1)
    if total >= limits.ratio_min_size and ratio > limits.max_ratio:
        raise ArchiveLimitError(source, "", "compression ratio", ratio, limits.max_ratio)


def find_chat_member(archive: zipfile.ZipFile, source: str) -> str:
    """Find the chat text file inside a zip export.

    Returns:
      ``_chat.txt`` (iOS) when present, else the one ``.txt`` member named like
      a chat (``WhatsApp Chat with …``, ``Conversa do WhatsApp com …``), else
      the only ``.txt`` member.

    Raises:
      ChatNotFoundError: When no member, or more than one, fits.
    """
    texts = [
        info.filename
        for info in archive.infolist()
        if not info.is_dir() and info.filename.lower().endswith(".txt")
    ]
    for name in texts:
        if PurePosixPath(name).name == "_chat.txt":
            return name

    named = [name for name in texts if _CHAT_NAME.fullmatch(PurePosixPath(name).name)]
    if len(named) == 1:
        return named[0]

    if len(texts) == 1:
        return texts[0]

    raise ChatNotFoundError(source, texts)


def media_members(archive: zipfile.ZipFile) -> dict[str, str]:
    """Map the base name of every file member to its full member name."""
    return {
        PurePosixPath(info.filename).name: info.filename
        for info in archive.infolist()
        if not info.is_dir()
    }


def extract_member(
    archive_path: str | os.PathLike[str],
    member: str,
    destination: str | os.PathLike[str],
    *,
    max_size: int = MAX_MEMBER_SIZE,
    limits: ArchiveLimits | None = None,
) -> Path:
    """Extract one member of a zip export into a folder, safely.

    Parameters:
      archive_path: The zip export.
      member: The member name, as in :attr:`Attachment.member`.
      destination: Folder to write into, created when missing.
      max_size: Maximum number of bytes written, in bytes.
      limits: Archive limits checked first, or None for the defaults.

    Returns:
      The path of the extracted file, inside ``destination``.

    Raises:
      UnsafeArchiveError: When the archive or the member is unsafe.
      ArchiveLimitError: When the member grows past ``max_size`` while copied;
        the partial file is removed.
      KeyError: When the archive has no such member.
    """
    source = os.fspath(archive_path)
    folder = Path(destination).resolve()
    with zipfile.ZipFile(archive_path) as archive:
        check_archive(archive, source, limits)
        info = archive.getinfo(member)
        target = (folder / PurePosixPath(info.filename).name).resolve()
        if target.parent != folder:
            raise UnsafeArchiveError(source, member, "target outside the destination")

        folder.mkdir(parents=True, exist_ok=True)
        _copy_capped(archive, info, target, source, max_size)

    logger.info("Extracted a member of %s to %s.", source, target)
    return target


def _copy_capped(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    source: str,
    max_size: int,
) -> None:
    """Copy a member to ``target`` in chunks, stopping at ``max_size`` bytes."""
    written = 0
    try:
        with archive.open(info) as reader, open(target, "wb") as writer:
            while chunk := reader.read(COPY_CHUNK_SIZE):
                written += len(chunk)
                if written > max_size:
                    raise ArchiveLimitError(
                        source, info.filename, "member size", written, max_size
                    )
                writer.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
