"""Fixtures for the transcriber tests: speech made with espeak-ng, tones, silence.

Speech is synthesised at test time with espeak-ng and encoded to Ogg/Opus with
soundfile.  Without espeak-ng the speech tests skip, unless ``CI`` is set, in
which case they fail because the CI script installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from wallie.audio.resample import PolyphaseResampler

#: espeak-ng voice and speed (words per minute) that PocketSphinx's en-us model
#: recognised best among the voices tried.
VOICE = "en-us+f2"
WORDS_PER_MINUTE = 140

#: Sample rate of the Opus files written by the fixtures, in hertz; Opus
#: accepts 8, 12, 16, 24 and 48 kHz.
OPUS_RATE = 48_000

FloatArray = npt.NDArray[np.float64]


def require_espeak() -> str:
    """Return the espeak-ng program, skipping or failing when it is missing."""
    program = shutil.which("espeak-ng")
    if program is not None:
        return program

    reason = "espeak-ng is not installed; install the Debian package espeak-ng."
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def speak(text: str, folder: Path) -> FloatArray:
    """Synthesise ``text`` with espeak-ng and return it as 48 kHz mono samples."""
    program = require_espeak()
    wav = folder / "espeak.wav"
    subprocess.run(
        [program, "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(wav), text],
        check=True,
        capture_output=True,
    )
    samples, rate = soundfile.read(wav, dtype="float64")
    wav.unlink()
    return resample(samples, rate, OPUS_RATE)


def resample(samples: FloatArray, input_rate: int, output_rate: int) -> FloatArray:
    """Resample a whole mono signal at once."""
    resampler = PolyphaseResampler(input_rate, output_rate)
    return np.concatenate([resampler.process(samples), resampler.flush()])


def silence(seconds: float, rate: int = OPUS_RATE) -> FloatArray:
    """Return digital silence."""
    return np.zeros(int(seconds * rate), dtype=np.float64)


def tone(seconds: float, frequency: float = 440.0, rate: int = OPUS_RATE) -> FloatArray:
    """Return a sine tone at half of full scale."""
    times = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * frequency * times)


def write_opus(path: Path, samples: FloatArray, rate: int = OPUS_RATE) -> Path:
    """Write mono or multi-channel samples as Ogg/Opus and return the path."""
    soundfile.write(path, samples, rate, format="OGG", subtype="OPUS")
    return path


@pytest.fixture
def make_speech(tmp_path: Path) -> Callable[..., Path]:
    """Return a function that writes spoken sentences to an Ogg/Opus file.

    The function takes the sentences, a file name and the pause between
    sentences in seconds, and adds half a second of silence at both ends.
    """

    def make(
        sentences: list[str], name: str = "speech.opus", pause_s: float = 1.0
    ) -> Path:
        parts = [silence(0.5)]
        for sentence in sentences:
            parts.append(speak(sentence, tmp_path))
            parts.append(silence(pause_s))
        parts.append(silence(0.5))
        return write_opus(tmp_path / name, np.concatenate(parts))

    return make
