"""Check an audio file against the limits and stream it as 16 kHz mono PCM.

:func:`probe` reads only the file size, the first bytes and the header, so a
file over a limit, an empty file or a non-audio file is rejected before any
decoding.  :func:`decode_pcm16` then decodes the file block by block with
libsndfile (through ``soundfile``), mixes the channels to mono, resamples to
16 kHz and yields 16-bit samples, so memory stays bounded for long files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from wallie.audio.errors import (
    AudioTooLarge,
    AudioTooLong,
    CorruptAudioFile,
    EmptyAudioFile,
    NotAudioFile,
    UnsupportedAudioFormat,
)
from wallie.audio.resample import PolyphaseResampler

#: Sample rate of the decoded stream, in hertz: the rate of PocketSphinx's
#: en-us acoustic model, and enough for speech-to-text providers.
TARGET_RATE = 16_000

#: Input frames decoded per block; about 0.7 s at 48 kHz.
BLOCK_FRAMES = 32_768

#: Bytes read from the start of a file to recognise its type.
SNIFF_BYTES = 64

Int16Array = npt.NDArray[np.int16]

# First bytes of containers that libsndfile decodes: Ogg (Opus, Vorbis, FLAC),
# RIFF/RF64/BW64 WAV, FLAC, MP3 with an ID3 tag, AIFF, CAF, AU.
_DECODABLE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"OggS", "Ogg"),
    (b"RIFF", "WAV"),
    (b"RF64", "WAV"),
    (b"BW64", "WAV"),
    (b"fLaC", "FLAC"),
    (b"ID3", "MP3"),
    (b"FORM", "AIFF"),
    (b"caff", "CAF"),
    (b".snd", "AU"),
)

# Audio containers that libsndfile does not decode.
_UNSUPPORTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x1aE\xdf\xa3", "WebM/Matroska"),
    (b"#!AMR", "AMR"),
    (b"ADIF", "AAC"),
)

# Common non-audio files, named for the error message.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or an Office document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable program"),
)


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file that passed the size and duration limits.

    Attributes:
      path: The file, as given by the caller.
      size_bytes: The file size, in bytes.
      container: The libsndfile major format, for example ``"OGG"``.
      subtype: The libsndfile subtype, for example ``"OPUS"``.
      sample_rate: The file's sample rate, in hertz.
      channels: The number of channels.
      frames: Frames that the header declares; decoding may find fewer.
    """

    path: str
    size_bytes: int
    container: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        """Duration that the header declares, in seconds."""
        return self.frames / self.sample_rate


def probe(
    path: str | os.PathLike[str], *, max_size_bytes: int, max_duration_s: float
) -> AudioInfo:
    """Check a file's size, type and declared duration without decoding it.

    Parameters:
      path: The audio file.
      max_size_bytes: The maximum accepted file size, in bytes.
      max_duration_s: The maximum accepted audio duration, in seconds.

    Returns:
      The header facts of the file.

    Raises:
      FileNotFoundError: The file does not exist.
      EmptyAudioFile: The file has 0 bytes.
      AudioTooLarge: The file is larger than ``max_size_bytes``.
      NotAudioFile: The content is not audio.
      UnsupportedAudioFormat: The content is audio that libsndfile cannot decode.
      CorruptAudioFile: The content starts like audio but its header is invalid.
      AudioTooLong: The header declares more than ``max_duration_s``.
    """
    name = os.fspath(path)
    size = Path(name).stat().st_size
    if size == 0:
        raise EmptyAudioFile(name)
    if size > max_size_bytes:
        raise AudioTooLarge(name, size, max_size_bytes)

    with open(name, "rb") as stream:
        head = stream.read(SNIFF_BYTES)

    try:
        header = soundfile.info(name)
    except soundfile.LibsndfileError as error:
        raise _open_error(name, head, error.error_string) from error
    except soundfile.SoundFileError as error:
        raise _open_error(name, head, str(error)) from error

    info = AudioInfo(
        path=name,
        size_bytes=size,
        container=header.format,
        subtype=header.subtype,
        sample_rate=int(header.samplerate),
        channels=int(header.channels),
        frames=max(0, int(header.frames)),
    )
    if info.duration_s > max_duration_s:
        raise AudioTooLong(name, info.duration_s, max_duration_s)

    return info


def decode_pcm16(info: AudioInfo, *, max_duration_s: float) -> Iterator[Int16Array]:
    """Decode a probed file into blocks of 16 kHz mono 16-bit samples.

    Parameters:
      info: The result of :func:`probe` for the file.
      max_duration_s: The maximum accepted audio duration, in seconds; checked again
        while decoding because a header may under-report the length.

    Returns:
      An iterator of non-empty sample blocks at :data:`TARGET_RATE`.

    Raises:
      CorruptAudioFile: Decoding failed part way through.
      AudioTooLong: The decoded audio is longer than ``max_duration_s``.
    """
    max_frames = int(max_duration_s * info.sample_rate)
    resampler = None
    if info.sample_rate != TARGET_RATE:
        resampler = PolyphaseResampler(info.sample_rate, TARGET_RATE)

    decoded = 0
    for block in _read_blocks(info, max_frames + 1):
        decoded += block.shape[0]
        if decoded > max_frames:
            raise AudioTooLong(info.path, decoded / info.sample_rate, max_duration_s)

        mono = block.mean(axis=1, dtype=np.float64)
        samples = mono if resampler is None else resampler.process(mono)
        if samples.size:
            yield to_pcm16(samples)

    if resampler is not None:
        tail = resampler.flush()
        if tail.size:
            yield to_pcm16(tail)


def to_pcm16(samples: npt.NDArray[np.float64]) -> Int16Array:
    """Convert float samples in [-1, 1] to 16-bit integers, clipping the rest.

    Parameters:
      samples: Float samples; NaN becomes 0.

    Returns:
      The samples scaled by 32767 and rounded.
    """
    clean = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.round(np.clip(clean, -1.0, 1.0) * 32767.0).astype(np.int16)


def _read_blocks(info: AudioInfo, frames: int) -> Iterator[npt.NDArray[np.float32]]:
    """Yield float blocks of shape (frames, channels), mapping decoder errors."""
    try:
        with soundfile.SoundFile(info.path) as audio:
            yield from audio.blocks(
                blocksize=BLOCK_FRAMES, frames=frames, dtype="float32", always_2d=True
            )
    except soundfile.LibsndfileError as error:
        raise CorruptAudioFile(info.path, error.error_string) from error
    except soundfile.SoundFileError as error:
        raise CorruptAudioFile(info.path, str(error)) from error


def _open_error(path: str, head: bytes, reason: str) -> Exception:
    """Return the error for a file that libsndfile could not open.

    Parameters:
      path: The file.
      head: Its first bytes.
      reason: libsndfile's message.

    Returns:
      :class:`CorruptAudioFile` when the first bytes are those of a container
      that libsndfile decodes, :class:`UnsupportedAudioFormat` for other audio
      containers, and :class:`NotAudioFile` otherwise.
    """
    reason = reason.rstrip(".")
    for signature, _container in _DECODABLE_SIGNATURES:
        if head.startswith(signature):
            return CorruptAudioFile(path, reason)
    if _is_mpeg_audio_frame(head):
        return CorruptAudioFile(path, reason)

    for signature, container in _UNSUPPORTED_SIGNATURES:
        if head.startswith(signature):
            return UnsupportedAudioFormat(path, container)
    # MP4 and M4A files carry "ftyp" after a 4-byte box size.
    if head[4:8] == b"ftyp":
        return UnsupportedAudioFormat(path, "MP4/M4A")

    return NotAudioFile(path, describe_content(head))


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """Return whether ``head`` starts with an MPEG audio frame sync (11 set bits)."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def describe_content(head: bytes) -> str:
    """Name what non-audio bytes look like, for an error message.

    Parameters:
      head: The first bytes of a file.

    Returns:
      A phrase such as ``"a PDF document"`` or ``"a text file"``.
    """
    for signature, description in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return description

    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # Only the last character may be invalid, cut by the sample's end.
        if error.start < len(head) - 3:
            return "binary data of an unknown type"
        text = head[: error.start].decode("utf-8")
    if text and all(char.isprintable() or char in "\t\n\r" for char in text):
        return "a text file"

    return "binary data of an unknown type"
