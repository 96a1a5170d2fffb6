"""Cut a PCM stream into bounded segments at pauses, and measure its level."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

#: Samples per level-measurement frame: 20 ms at 16 kHz.
FRAME_SAMPLES = 320

#: Frame level under which audio counts as silence, in dBFS (RMS relative to
#: a full-scale square wave).  Speech recorded by a phone peaks around -30 to
#: -10 dBFS, while a quiet room with phone noise stays near -60 dBFS.
SILENCE_DBFS = -45.0

#: Level reported for digital silence, in dBFS, instead of minus infinity.
FLOOR_DBFS = -120.0


def frame_levels(samples: Int16Array) -> npt.NDArray[np.float64]:
    """Return the RMS level of each whole frame of ``samples``, in dBFS.

    Parameters:
      samples: 16-bit samples; a trailing partial frame is measured as a frame
        of its own.

    Returns:
      One level per frame, at least :data:`FLOOR_DBFS`; empty for no samples.
    """
    if samples.size == 0:
        return np.zeros(0, dtype=np.float64)

    padding = (-samples.size) % FRAME_SAMPLES
    scaled = samples.astype(np.float64) / 32768.0
    if padding:
        # Pad with the edge value so that the partial frame keeps its level.
        scaled = np.pad(scaled, (0, padding), mode="edge")
    frames = scaled.reshape(-1, FRAME_SAMPLES)
    power = np.mean(frames * frames, axis=1)
    floor = 10.0 ** (FLOOR_DBFS / 10.0)
    return 10.0 * np.log10(np.maximum(power, floor))


def peak_level_dbfs(samples: Int16Array) -> float:
    """Return the level of the loudest frame of ``samples``, in dBFS.

    Parameters:
      samples: 16-bit samples.

    Returns:
      The highest frame level; :data:`FLOOR_DBFS` for no samples.
    """
    levels = frame_levels(samples)
    if levels.size == 0:
        return FLOOR_DBFS

    return float(levels.max())


def has_sound(samples: Int16Array) -> bool:
    """Return whether any frame of ``samples`` is louder than :data:`SILENCE_DBFS`."""
    return peak_level_dbfs(samples) > SILENCE_DBFS


def split_at_pauses(
    blocks: Iterable[Int16Array], *, max_samples: int, search_samples: int
) -> Iterator[Int16Array]:
    """Regroup sample blocks into segments of at most ``max_samples`` samples.

    A segment that reaches the maximum is cut at the quietest frame within its
    last ``search_samples`` samples, so that cuts fall in pauses between words
    where the audio has any.

    Parameters:
      blocks: Sample blocks of any size.
      max_samples: The maximum segment length, in samples; at least two frames.
      search_samples: How far back from the maximum to look for a pause, in
        samples; at most ``max_samples``.

    Returns:
      An iterator of non-empty segments, which together hold every sample in
      order.

    Raises:
      ValueError: ``max_samples`` or ``search_samples`` is out of range.
    """
    if max_samples < 2 * FRAME_SAMPLES:
        raise ValueError(
            f"max_samples must be at least {2 * FRAME_SAMPLES}; got {max_samples}."
        )
    if not 0 < search_samples <= max_samples:
        raise ValueError(
            f"search_samples must be in 1..{max_samples}; got {search_samples}."
        )

    pending: list[Int16Array] = []
    pending_size = 0
    for block in blocks:
        pending.append(block)
        pending_size += block.size
        if pending_size < max_samples:
            continue

        buffer = np.concatenate(pending)
        while buffer.size >= max_samples:
            cut = _quietest_cut(buffer, max_samples, search_samples)
            yield buffer[:cut]
            buffer = buffer[cut:]
        pending = [buffer]
        pending_size = buffer.size

    if pending_size:
        yield np.concatenate(pending)


def _quietest_cut(buffer: Int16Array, max_samples: int, search_samples: int) -> int:
    """Return the cut position: the middle of the quietest frame in the window."""
    start = max(0, max_samples - search_samples)
    window = buffer[start:max_samples]
    usable = (window.size // FRAME_SAMPLES) * FRAME_SAMPLES
    if usable == 0:
        return max_samples

    levels = frame_levels(window[:usable])
    quietest = int(np.argmin(levels))
    return start + quietest * FRAME_SAMPLES + FRAME_SAMPLES // 2
