"""Clip arithmetic: exact frame/sample counts, shared start times, padding and valid lengths."""

from __future__ import annotations

import numpy as np
import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.prepare.windows import (
    clip_windows,
    frames_per_clip,
    pad_frames,
    pad_samples,
    samples_per_clip,
    window_at,
)


def test_grid_gives_one_full_window_with_short_audio() -> None:
    windows = clip_windows(75, 25, 3, min_valid_seconds=1.0, num_audio_samples=47680)
    assert len(windows) == 1
    w = windows[0]
    assert (w.start_frame, w.num_frames, w.valid_frames) == (0, 75, 75)
    assert (w.start_sample, w.num_samples, w.valid_samples) == (0, 48000, 47680)
    assert w.start_s == 0.0 and w.end_s == pytest.approx(3.0)


@pytest.mark.parametrize("fps", [25, 30])
def test_windows_are_consecutive_and_share_start_times(fps: int) -> None:
    sr = 16000
    num_frames = 10 * 60 * fps + fps  # 10 min and 1 s
    windows = clip_windows(num_frames, fps, 3, min_valid_seconds=0.5, sample_rate_hz=sr)
    t = 3 * fps
    assert len(windows) == num_frames // t + 1
    for k, w in enumerate(windows):
        assert w.index == k
        assert w.start_frame == k * t and w.num_frames == t
        assert w.start_sample == k * 48000 and w.num_samples == 48000
        # video and audio start at the same source time, exactly
        assert w.start_frame * sr == w.start_sample * fps
        assert w.start_s == w.start_frame / fps
    last = windows[-1]
    assert last.valid_frames == fps
    assert last.valid_samples == sr
    assert last.end_s == pytest.approx(num_frames / fps)
    assert all(w.valid_frames == t and w.valid_samples == 48000 for w in windows[:-1])


def test_short_tail_below_minimum_is_dropped() -> None:
    # 100 frames at 25 fps: one full clip + a 1.0 s tail
    kept = clip_windows(100, 25, 3, min_valid_seconds=1.0)
    dropped = clip_windows(100, 25, 3, min_valid_seconds=1.5)
    assert [w.valid_frames for w in kept] == [75, 25]
    assert [w.valid_frames for w in dropped] == [75]
    assert clip_windows(20, 25, 3, min_valid_seconds=1.0) == []
    assert clip_windows(0, 25, 3, min_valid_seconds=0.0) == []


def test_audio_shorter_or_longer_than_video() -> None:
    windows = clip_windows(150, 25, 3, min_valid_seconds=1, num_audio_samples=60000)
    assert [w.valid_samples for w in windows] == [48000, 12000]
    windows = clip_windows(150, 25, 3, min_valid_seconds=1, num_audio_samples=40000)
    assert [w.valid_samples for w in windows] == [40000, 0]
    windows = clip_windows(75, 25, 3, min_valid_seconds=1, num_audio_samples=99999)
    assert [w.valid_samples for w in windows] == [48000]


def test_non_integral_clip_lengths_are_config_errors() -> None:
    assert frames_per_clip(30, 3) == 90
    assert samples_per_clip(16000, 3) == 48000
    with pytest.raises(ConfigError, match="29.97"):
        frames_per_clip(29.97, 3)
    with pytest.raises(ConfigError, match="whole number"):
        samples_per_clip(16000, 0.00001)


def test_pad_frames_repeats_last_frame() -> None:
    frames = [np.full((4, 5, 3), i, dtype=np.uint8) for i in range(3)]
    padded = pad_frames(frames, 6)
    assert padded.shape == (6, 4, 5, 3) and padded.dtype == np.uint8
    assert [int(f[0, 0, 0]) for f in padded] == [0, 1, 2, 2, 2, 2]
    assert pad_frames(np.stack(frames), 3).shape == (3, 4, 5, 3)
    with pytest.raises(ValueError, match="at least one"):
        pad_frames([], 3)
    with pytest.raises(ValueError, match="do not fit"):
        pad_frames(frames, 2)


def test_pad_samples_zero_pads() -> None:
    wav = np.arange(1, 47681, dtype=np.int16)
    padded = pad_samples(wav, 48000)
    assert padded.shape == (48000,) and padded.dtype == np.int16
    assert np.array_equal(padded[:47680], wav)
    assert not padded[47680:].any()
    with pytest.raises(ValueError, match="do not fit"):
        pad_samples(wav, 100)


@pytest.mark.parametrize(("num_frames", "fps", "audio"), [(75, 25, 47680), (200, 30, 106000),
                                                          (20, 25, 0), (180, 30, None)])
def test_streaming_rule_is_the_whole_video_rule(num_frames, fps, audio):
    """The preprocessor calls window_at clip by clip; clip_windows is the same rule whole."""
    whole = clip_windows(num_frames, fps, 3, min_valid_seconds=1.0, num_audio_samples=audio)
    t, s = frames_per_clip(fps, 3), samples_per_clip(16000, 3)
    total = audio if audio is not None else int(num_frames * 16000 / fps)
    streamed = []
    for k in range(-(-num_frames // t)):
        window = window_at(k, min(t, num_frames - k * t), min(s, total - k * s), fps, 3,
                           min_valid_seconds=1.0)
        if window is None:
            break
        streamed.append(window)
    assert streamed == whole
