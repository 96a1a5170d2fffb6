"""Open an export file or stream and read it as text, one pass at a time."""

from __future__ import annotations

import codecs
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO

from wallie.whatsapp.errors import ExportEncodingError

#: Bytes read to detect the encoding, in bytes.
SNIFF_SIZE = 4096

#: Size of the chunks decoded when locating an encoding error, in bytes.
CHUNK_SIZE = 1 << 20

#: Bytes (UTF-8) or characters (other codecs) per block of :func:`read_blocks`.
#: Large enough that the per-block work is small, small enough that the
#: objects made from one block fit in memory the allocator keeps. On Linux
#: with CPython 3.11, a parse of 100k messages took 1,300 page faults with
#: 32 KiB blocks, 4,700 with 64 KiB and 12,000 with 256 KiB. It was 10 to 15%
#: faster with 32 KiB than with 256 KiB. Blocks of 8 KiB were slower again,
#: from the work per block.
BLOCK_SIZE = 1 << 15

#: Opens a fresh binary stream positioned at the start of the export.
Opener = Callable[[], AbstractContextManager[BinaryIO]]


def detect_encoding(head: bytes) -> str:
    """Detect the codec of an export from its first bytes.

    Parameters:
      head: The first bytes of the file, up to ``SNIFF_SIZE``.

    Returns:
      ``"utf-8-sig"`` for UTF-8 with or without a byte-order mark, ``"utf-16"``
      for UTF-16 with a byte-order mark, or ``"utf-16-le"`` / ``"utf-16-be"``
      when the NUL bytes show UTF-16 text without one.

    Note:
      Exports are mostly ASCII digits and punctuation, so in UTF-16 without a
      byte-order mark nearly every other byte is NUL. NULs in a third of the
      pairs is the threshold used here.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"

    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"

    pairs = len(head) // 2
    if pairs:
        even_nuls = head[0 : pairs * 2 : 2].count(0)
        odd_nuls = head[1 : pairs * 2 : 2].count(0)
        if odd_nuls * 3 >= pairs and even_nuls * 10 < pairs:
            return "utf-16-le"
        if even_nuls * 3 >= pairs and odd_nuls * 10 < pairs:
            return "utf-16-be"

    return "utf-8-sig"


def sniff(opener: Opener) -> str:
    """Detect the codec of the export that ``opener`` opens."""
    with opener() as stream:
        return detect_encoding(stream.read(SNIFF_SIZE))


def read_lines(opener: Opener, encoding: str, source: str) -> Iterator[str]:
    """Yield the lines of the export with their line endings.

    Parameters:
      opener: Opens the export as a binary stream.
      encoding: Codec from :func:`detect_encoding`.
      source: Name of the export, for error messages.

    Raises:
      ExportEncodingError: When the bytes do not decode, naming the byte
        offset of the first invalid byte.

    Note:
      ``newline=""`` keeps ``\\r\\n`` and ``\\n`` apart, which the parser needs,
      and splits only on CR and LF, never on U+2028 inside a message.
    """
    with opener() as stream:
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        try:
            yield from text
        except UnicodeDecodeError as error:
            raise locate_decode_error(opener, encoding, source, error) from error
        finally:
            # Detach so that the caller's stream stays open. A stream already
            # closed by garbage collection needs nothing.
            if not stream.closed:
                text.detach()


def read_blocks(
    opener: Opener, encoding: str, source: str, size: int | None = None
) -> Iterator[str]:
    """Yield the decoded text of the export in blocks of whole lines.

    Parameters:
      opener: Opens the export as a binary stream.
      encoding: Codec from :func:`detect_encoding`.
      source: Name of the export, for error messages.
      size: Bytes read per block for UTF-8, else characters decoded per
        block. ``BLOCK_SIZE`` when None.

    Raises:
      ExportEncodingError: When the bytes do not decode, naming the byte
        offset of the first invalid byte.

    Note:
      Every block but the last ends with a line ending, and a CR at the end of
      a read is held back, so a CRLF is never split between blocks. Lines end
      at CR, LF or CRLF as in :func:`read_lines`. A line longer than ``size``
      makes a block longer than ``size``.
    """
    if encoding == "utf-8-sig":
        for data in read_utf8_blocks(opener, size):
            yield decode_utf8_block(data, opener, source)
        return

    size = size or BLOCK_SIZE
    with opener() as stream:
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        try:
            # Pieces of a line that spans reads, joined once it ends, so that a
            # very long line is copied once rather than once per read.
            carry: list[str] = []
            while chunk := text.read(size):
                cut = max(chunk.rfind("\n"), chunk.rfind("\r", 0, len(chunk) - 1)) + 1
                if cut == 0:
                    carry.append(chunk)
                    continue

                yield "".join([*carry, chunk[:cut]])
                carry = [chunk[cut:]] if cut < len(chunk) else []
            if carry:
                yield "".join(carry)
        except UnicodeDecodeError as error:
            raise locate_decode_error(opener, encoding, source, error) from error
        finally:
            # Detach so that the caller's stream stays open. A stream already
            # closed by garbage collection needs nothing.
            if not stream.closed:
                text.detach()


def read_utf8_blocks(opener: Opener, size: int | None = None) -> Iterator[bytes]:
    """Yield the bytes of a UTF-8 export in the blocks of :func:`read_blocks`.

    A byte-order mark at the start of the file is left out, as the
    ``utf-8-sig`` codec leaves it out, so :func:`decode_utf8_block` of each
    block gives the text :func:`read_blocks` gives.

    Note:
      In UTF-8 the bytes of CR and LF never occur inside another character,
      so the bytes can be cut at a line ending before they are decoded. Each
      block then decodes in one call, about twice as fast as a text reader,
      and the first pass can read most blocks without decoding them.
    """
    size = size or BLOCK_SIZE
    with opener() as stream:
        head = _read_head(stream)
        carry: list[bytes] = [] if head == codecs.BOM_UTF8 else [head]
        while chunk := stream.read(size):
            cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r", 0, len(chunk) - 1)) + 1
            if cut == 0:
                carry.append(chunk)
                continue

            yield b"".join([*carry, chunk[:cut]]) if carry else chunk[:cut]
            carry = [chunk[cut:]] if cut < len(chunk) else []
        tail = b"".join(carry)
        if tail:
            yield tail


def _read_head(stream: BinaryIO) -> bytes:
    """Read as many bytes as a UTF-8 byte-order mark has, fewer only at the end."""
    head = b""
    while len(head) < len(codecs.BOM_UTF8) and (
        more := stream.read(len(codecs.BOM_UTF8) - len(head))
    ):
        head += more
    return head


def decode_utf8_block(data: bytes, opener: Opener, source: str) -> str:
    """Decode a block of :func:`read_utf8_blocks`.

    Raises:
      ExportEncodingError: When the bytes do not decode, naming the byte
        offset in the file of the first invalid byte.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise locate_decode_error(opener, "utf-8-sig", source, error) from error


def locate_decode_error(
    opener: Opener, encoding: str, source: str, error: UnicodeDecodeError
) -> ExportEncodingError:
    """Decode the export again chunk by chunk to find the invalid byte's offset.

    Parameters:
      opener: Opens the export as a binary stream.
      encoding: The codec that failed.
      source: Name of the export, for the message.
      error: The error raised by the text reader, whose offsets are relative
        to an unknown chunk.

    Returns:
      The error to raise, with the absolute byte offset.

    Note:
      A UTF-8 export is decoded here with the plain ``utf-8`` codec after its
      byte-order mark is skipped. The ``utf-8-sig`` decoder of CPython 3.11
      counts error offsets from the byte after the mark, and raises nothing
      for a file that is only the first bytes of a mark.
    """
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    decoder = codecs.getincrementaldecoder(codec)("strict")
    consumed = 0
    with opener() as stream:
        head = _read_head(stream) if codec != encoding else b""
        if head == codecs.BOM_UTF8:
            consumed, head = len(head), b""
        while chunk := head + stream.read(CHUNK_SIZE):
            head = b""
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as located:
                offset = consumed - pending + located.start
                return ExportEncodingError(source, encoding, offset, located.reason)
            consumed += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as located:
            offset = consumed - len(decoder.getstate()[0]) + located.start
            return ExportEncodingError(source, encoding, offset, located.reason)

    return ExportEncodingError(source, encoding, -1, error.reason)


@contextmanager
def _unclosable(stream: BinaryIO, start: int) -> Iterator[BinaryIO]:
    """Rewind ``stream`` to ``start`` and keep it open after the block."""
    stream.seek(start)
    yield stream


def opener_for_stream(stream: BinaryIO) -> tuple[Opener, Callable[[], None]]:
    """Build an opener that can read a caller's binary stream more than once.

    Parameters:
      stream: A binary stream that the caller keeps open while parsing.

    Returns:
      The opener and a cleanup function to call when parsing is done.

    Note:
      A stream that cannot seek is first copied to a temporary file in chunks,
      so memory stays flat whatever its size.
    """
    if stream.seekable():
        start = stream.tell()
        return (lambda: _unclosable(stream, start)), (lambda: None)

    spool = tempfile.NamedTemporaryFile(prefix="wallie-whatsapp-", delete=False)
    with spool:
        shutil.copyfileobj(stream, spool, CHUNK_SIZE)

    def cleanup() -> None:
        os.unlink(spool.name)

    return (lambda: open(spool.name, "rb")), cleanup
