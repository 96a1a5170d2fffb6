"""Tests of level measurement and splitting at pauses."""

from __future__ import annotations

import numpy as np
import pytest

from wallie.audio.segments import (
    FLOOR_DBFS,
    FRAME_SAMPLES,
    frame_levels,
    has_sound,
    peak_level_dbfs,
    split_at_pauses,
)


def loud(samples: int) -> np.ndarray:
    times = np.arange(samples) / 16_000
    return (8000 * np.sin(2 * np.pi * 300 * times)).astype(np.int16)


def blocks_of(samples: np.ndarray, size: int) -> list[np.ndarray]:
    return [samples[start : start + size] for start in range(0, samples.size, size)]


def test_levels_of_full_scale_and_silence() -> None:
    square = np.full(FRAME_SAMPLES, 32767, dtype=np.int16)

    assert frame_levels(square)[0] == pytest.approx(0.0, abs=0.01)
    assert peak_level_dbfs(np.zeros(1000, dtype=np.int16)) == FLOOR_DBFS
    assert peak_level_dbfs(np.zeros(0, dtype=np.int16)) == FLOOR_DBFS


def test_has_sound_threshold() -> None:
    assert has_sound(loud(16_000))
    assert not has_sound(np.zeros(16_000, dtype=np.int16))
    # About -66 dBFS: the hiss of a quiet room.
    hiss = np.random.default_rng(1).normal(0, 16, 16_000).astype(np.int16)
    assert not has_sound(hiss)


def test_split_keeps_every_sample_in_order() -> None:
    samples = np.random.default_rng(2).integers(-3000, 3000, 100_000).astype(np.int16)
    segments = list(
        split_at_pauses(
            blocks_of(samples, 7_000), max_samples=16_000, search_samples=4_000
        )
    )

    assert np.array_equal(np.concatenate(segments), samples)
    assert all(0 < segment.size <= 16_000 for segment in segments)


def test_split_cuts_in_the_pause() -> None:
    # 1.3 s of sound, 0.2 s of silence, 1.0 s of sound; segments of at most 2 s.
    samples = np.concatenate(
        [loud(20_800), np.zeros(3_200, dtype=np.int16), loud(16_000)]
    )
    segments = list(
        split_at_pauses(
            blocks_of(samples, 5_000), max_samples=32_000, search_samples=16_000
        )
    )

    assert len(segments) == 2
    assert 20_800 <= segments[0].size <= 24_000
    assert not np.any(segments[0][-FRAME_SAMPLES // 2 :])


def test_split_short_stream_is_one_segment() -> None:
    samples = loud(5_000)
    segments = list(
        split_at_pauses([samples], max_samples=16_000, search_samples=4_000)
    )

    assert len(segments) == 1
    assert np.array_equal(segments[0], samples)


def test_split_empty_stream_yields_nothing() -> None:
    assert list(split_at_pauses([], max_samples=16_000, search_samples=4_000)) == []


def test_split_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="max_samples"):
        list(split_at_pauses([], max_samples=10, search_samples=5))
    with pytest.raises(ValueError, match="search_samples"):
        list(split_at_pauses([], max_samples=16_000, search_samples=20_000))
