"""Tests of the streaming polyphase resampler."""

from __future__ import annotations

import numpy as np
import pytest

from wallie.audio.resample import PolyphaseResampler

RATES = [
    (48_000, 16_000),
    (44_100, 16_000),
    (22_050, 16_000),
    (24_000, 16_000),
    (8_000, 16_000),
    (11_025, 16_000),
    (22_050, 48_000),
]


def convert(
    samples: np.ndarray, input_rate: int, output_rate: int, block: int
) -> np.ndarray:
    resampler = PolyphaseResampler(input_rate, output_rate)
    parts = [
        resampler.process(samples[start : start + block])
        for start in range(0, samples.size, block)
    ]
    parts.append(resampler.flush())
    return np.concatenate(parts)


def sine(frequency: float, rate: int, seconds: float) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)


@pytest.mark.parametrize(("input_rate", "output_rate"), RATES)
def test_resample_sine_matches_ideal(input_rate: int, output_rate: int) -> None:
    output = convert(sine(1000.0, input_rate, 1.0), input_rate, output_rate, 4096)
    expected = sine(1000.0, output_rate, 1.0)
    # The first and last filter half-widths see the zero padding at the edges.
    middle = slice(output_rate // 20, -output_rate // 20)

    assert output.size == expected.size
    assert np.max(np.abs(output[middle] - expected[middle])) < 1e-3


@pytest.mark.parametrize(("input_rate", "output_rate"), RATES)
def test_resample_output_length(input_rate: int, output_rate: int) -> None:
    for frames in (0, 1, 7, 1001, input_rate + 3):
        output = convert(np.ones(frames), input_rate, output_rate, 500)

        assert output.size == -(-frames * output_rate // input_rate)


def test_resample_block_size_does_not_matter() -> None:
    samples = np.random.default_rng(7).uniform(-0.5, 0.5, 30_000)
    whole = convert(samples, 44_100, 16_000, samples.size)

    for block in (1, 13, 512, 4097):
        assert np.allclose(convert(samples, 44_100, 16_000, block), whole, atol=1e-12)


def test_resample_rejects_aliases() -> None:
    # A 10 kHz tone is above the 8 kHz Nyquist frequency of 16 kHz output, so
    # it must be filtered out rather than fold back to 6 kHz.
    output = convert(sine(10_000.0, 48_000, 1.0), 48_000, 16_000, 4096)
    rms = np.sqrt(np.mean(output[800:-800] ** 2))

    assert rms < 1e-3


def test_resample_keeps_passband_level() -> None:
    output = convert(sine(3_000.0, 44_100, 1.0), 44_100, 16_000, 4096)
    rms = np.sqrt(np.mean(output[800:-800] ** 2))

    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_resample_same_rate_is_identity() -> None:
    samples = np.random.default_rng(3).uniform(-0.5, 0.5, 5_000)

    assert np.allclose(convert(samples, 16_000, 16_000, 333), samples, atol=1e-9)


def test_resample_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        PolyphaseResampler(0, 16_000)


def test_resample_after_flush_fails() -> None:
    resampler = PolyphaseResampler(48_000, 16_000)
    resampler.flush()

    with pytest.raises(RuntimeError, match="flushed"):
        resampler.process(np.zeros(10))
