"""Media normalisation: probing, frame counting, exact-time resampling, aligned audio, bad input."""

from __future__ import annotations

import contextlib
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lipflow.tasks.common.errors import MediaError
from lipflow.tasks.media import audio, container
from lipflow.tasks.media.audio import iter_audio_blocks, read_audio
from lipflow.tasks.media.demux import clip_streams
from lipflow.tasks.media.probe import count_frames, probe
from lipflow.tasks.media.video import frame_rgb, iter_frames, resample_by_time
from tests.support.synthetic_media import (
    make_audio_only,
    make_empty,
    make_text_as_mp4,
    make_truncated_copy,
    make_video,
    make_wrong_header_count,
)

NTSC = Fraction(30000, 1001)
SR = 16000


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def ntsc_mp4(media_dir: Path) -> Path:
    """2 s of 29.97 fps testsrc with a 440 Hz tone from 0.5 s."""
    return make_video(media_dir / "ntsc.mp4", fps="30000/1001", duration_s=2.0, tone_start_s=0.5)


@pytest.fixture(scope="module")
def grid_files(sample_grid: Path) -> list[Path]:
    files = sorted(sample_grid.glob("s*/*.mpg"))
    assert len(files) >= 6
    return files


def test_fast_rgb_conversion_matches_swscale(grid_files: list[Path]) -> None:
    """The OpenCV I420 path differs from PyAV's rgb24 by at most a few grey levels."""
    with av.open(str(grid_files[0])) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv420p"
        fast = frame_rgb(frame).astype(int)
        reference = frame.to_ndarray(format="rgb24").astype(int)
    assert fast.shape == reference.shape
    assert np.abs(fast - reference).mean() < 1.5
    assert np.abs(fast - reference).max() <= 4


def source_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every decoded frame with its time from the video stream start (reference decode)."""
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        zero = float(v.start_time * v.time_base)
        return [
            (float(f.pts * v.time_base) - zero, frame_rgb(f))
            for f in container.decode(v)
        ]


def onset_s(wav: np.ndarray, sr: int = SR) -> float:
    """Time of the first sample above 10% of the peak."""
    env = np.abs(wav.astype(np.int32))
    return int(np.argmax(env > 0.1 * env.max())) / sr


# ------------------------------------------------------------------ GRID sample


def test_probe_and_count_grid(grid_files: list[Path]) -> None:
    for path in grid_files:
        info = probe(path)
        assert (info.width, info.height) == (360, 288)
        assert info.avg_fps == 25.0
        assert info.header_frames == 0  # MPEG-PS: the header does not know
        assert info.has_video and info.has_audio
        assert (info.audio_rate_hz, info.audio_channels) == (44100, 2)
        assert info.video_codec == "mpeg1video" and info.audio_codec == "mp2"
        assert count_frames(path) == 75


def test_grid_iter_frames_is_identity_at_25_fps(grid_files: list[Path]) -> None:
    path = grid_files[0]
    reference = source_frames(path)
    frames = list(iter_frames(path, 25))
    assert len(frames) == 75
    for n, frame in enumerate(frames):
        assert frame.index == n and frame.time_s == n / 25
        assert frame.source_time_s == pytest.approx(reference[n][0], abs=1e-9)
        assert frame.image.shape == (288, 360, 3) and frame.image.dtype == np.uint8
        assert np.array_equal(frame.image, reference[n][1])


def test_grid_audio_length_and_rate(grid_files: list[Path]) -> None:
    wav = read_audio(grid_files[0])
    assert wav.dtype == np.int16 and wav.ndim == 1
    with av.open(str(grid_files[0])) as source:
        native = sum(f.samples for f in source.decode(audio=0))
    # 131328 samples at 44.1 kHz = 2.978 s
    assert abs(len(wav) - native * SR / 44100) <= 2
    assert np.abs(wav.astype(np.int32)).max() > 1000  # speech, not silence


# ------------------------------------------------------------------ resampling logic


@pytest.mark.parametrize("fps", [30, 25])
def test_hour_of_ntsc_timestamps_resamples_without_drift(fps: int) -> None:
    num_source = 3600 * 30000 // 1001  # an hour of 29.97 fps
    period = 1001 / 30000
    timed = ((k * 1001 / 30000, period, k) for k in range(num_source))
    out = list(resample_by_time(timed, fps, eps_s=0.5 / 30000))
    duration = num_source * period
    assert len(out) == math.floor(duration * fps)
    errors = []
    for n, (index, t, source_t, k) in enumerate(out):
        assert index == n and t == n / fps  # exact, never accumulated
        errors.append(t - source_t)
        assert source_t == k * 1001 / 30000
    errors_arr = np.array(errors)
    assert errors_arr.max() < period and errors_arr.min() > -1e-9  # shown frame, never a future one
    # the chosen source frame is exactly floor(t * 29.97) all the way to the end
    last_index, last_t, _, last_k = out[-1]
    assert last_k == math.floor(Fraction(last_index, fps) * NTSC)
    chosen = np.array([k for *_, k in out])
    assert np.array_equal(chosen, np.floor(np.arange(len(out)) * (30000 / 1001) / fps + 1e-9))


@pytest.mark.parametrize("fps", [30, 25, 1])
def test_output_never_outlasts_the_source(fps: int) -> None:
    period = 1001 / 30000
    for num_source in range(1, 200):
        timed = ((k * period, period, k) for k in range(num_source))
        out = list(resample_by_time(timed, fps, eps_s=0.5 / 30000))
        assert len(out) == math.floor(Fraction(num_source, 1) / NTSC * fps)


def test_rounded_timestamps_still_map_one_to_one() -> None:
    # 25 fps stored in a 1/15360 time base: pts = round(k * 614.4) ticks, up to 33 us early/late
    tb = 1 / 15360
    timed = ((round(k * 614.4) * tb, None, k) for k in range(25 * 600))
    out = list(resample_by_time(timed, 25, eps_s=0.5 * tb, default_frame_s=0.04))
    assert [k for *_, k in out] == list(range(25 * 600))


def test_resample_window_and_before_first_frame() -> None:
    timed = [(0.5 + k / 10, None, k) for k in range(10)]  # 10 fps from 0.5 s to 1.5 s
    out = list(resample_by_time(iter(timed), 20, start_s=0.2, end_s=1.0))
    assert [round(t, 9) for _, t, _, _ in out] == [round(0.2 + n / 20, 9) for n in range(16)]
    # before the first frame, the first frame is shown; afterwards the one on screen
    assert [k for *_, k in out] == [0] * 8 + [1, 1, 2, 2, 3, 3, 4, 4]


# ------------------------------------------------------------------ 29.97 fps video


@pytest.mark.parametrize("fps", [30, 25])
def test_ntsc_video_becomes_exact_rate(ntsc_mp4: Path, fps: int) -> None:
    reference = source_frames(ntsc_mp4)
    assert count_frames(ntsc_mp4) == len(reference) == 60
    frames = list(iter_frames(ntsc_mp4, fps))
    assert len(frames) == math.floor(len(reference) / NTSC * fps)
    for n, frame in enumerate(frames):
        assert frame.time_s == n / fps
        k = math.floor(Fraction(n, fps) * NTSC)  # source frame on screen at n / fps
        assert frame.source_time_s == pytest.approx(reference[k][0], abs=1e-6)
        assert np.array_equal(frame.image, reference[k][1])


def test_window_and_crop(ntsc_mp4: Path) -> None:
    full = list(iter_frames(ntsc_mp4, 25))
    part = list(iter_frames(ntsc_mp4, 25, start_s=0.4, end_s=1.2, crop=(8, 4, 32, 20)))
    assert len(part) == 20
    for n, frame in enumerate(part):
        assert frame.time_s == 0.4 + n / 25
        assert frame.image.shape == (20, 32, 3) and frame.image.flags.c_contiguous
        assert np.array_equal(frame.image, full[10 + n].image[4:24, 8:40])
    with pytest.raises(MediaError, match="does not fit the 64x48 frame"):
        next(iter_frames(ntsc_mp4, 25, crop=(40, 0, 32, 20)))


def test_seeking_start_matches_decoding_from_zero(media_dir: Path) -> None:
    path = make_video(media_dir / "six.mkv", duration_s=6.0, tone_hz=300.0)
    full = list(iter_frames(path, 25))
    part = list(iter_frames(path, 25, start_s=3.6, end_s=4.6))  # start beyond the seek threshold
    assert len(part) == 25
    for n, frame in enumerate(part):
        assert frame.source_time_s == full[90 + n].source_time_s
        assert np.array_equal(frame.image, full[90 + n].image)
    whole = read_audio(path).astype(np.float64)
    window = read_audio(path, start_s=3.5, duration_s=1.0).astype(np.float64)
    assert len(window) == SR
    # after a seek the position is as exact as mkv's millisecond timestamps (<= 16 samples)
    lags = range(-16, 17)
    errs = [np.abs(window - whole[56000 + lag : 72000 + lag]).mean() for lag in lags]
    assert min(errs) < 0.05 * np.abs(whole).max()


# ------------------------------------------------------------------ audio alignment


@pytest.mark.parametrize(
    ("name", "audio_offset_s"),
    [("a.mp4", 0.0), ("b.mp4", 0.3), ("c.mkv", 0.3), ("d.mkv", -0.3), ("e.mpg", 0.3),
     ("f.avi", 0.0)],
)
def test_audio_is_aligned_to_video_start(media_dir: Path, name: str, audio_offset_s: float) -> None:
    path = make_video(media_dir / name, duration_s=2.0, tone_start_s=0.5,
                      audio_offset_s=audio_offset_s)
    info = probe(path)
    wav = read_audio(path)
    # the tone starts at 0.5 s of audio time, i.e. offset + 0.5 s on the video's clock
    assert onset_s(wav) == pytest.approx(0.5 + audio_offset_s, abs=0.002)
    assert info.audio_offset_s == pytest.approx(audio_offset_s, abs=0.03)  # AAC priming
    assert len(wav) == pytest.approx((2.0 + audio_offset_s) * SR, abs=0.03 * SR)


def test_late_audio_is_padded_with_silence(media_dir: Path) -> None:
    path = make_video(media_dir / "late.mkv", duration_s=1.0, tone_start_s=0.0,
                      audio_offset_s=0.25)
    wav = read_audio(path)
    assert not wav[:4000].any()
    assert onset_s(wav) == pytest.approx(0.25, abs=0.001)


def test_windows_and_blocks_agree_with_whole_read(ntsc_mp4: Path) -> None:
    whole = read_audio(ntsc_mp4)
    window = read_audio(ntsc_mp4, start_s=0.25, duration_s=1.0)
    assert np.array_equal(window, whole[4000:20000])
    tail = read_audio(ntsc_mp4, start_s=1.5, duration_s=3.0)  # ends early: not padded
    assert np.array_equal(tail, whole[24000:])
    blocks = list(iter_audio_blocks(ntsc_mp4, 10000))
    assert all(len(b) == 10000 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 10000
    assert np.array_equal(np.concatenate(blocks), whole)


# ------------------------------------------------------------------ bad input


def _all_readers(path: Path) -> list:
    return [
        lambda: probe(path),
        lambda: count_frames(path),
        lambda: next(iter_frames(path, 25)),
        lambda: read_audio(path),
        lambda: clip_streams(path, 25, 48000).__enter__(),
    ]


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (lambda d: make_empty(d / "empty.mp4"), "empty file"),
        (lambda d: make_text_as_mp4(d / "text.mp4"), "not a media file"),
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: d, "is a folder"),
        (lambda d: make_audio_only(d / "sound.m4a"), "has no video stream"),
    ],
)
def test_bad_files_raise_one_line_media_errors(media_dir: Path, maker, reason: str) -> None:
    path = maker(media_dir)
    for reader in _all_readers(path):
        with pytest.raises(MediaError) as caught:
            reader()
        message = str(caught.value)
        assert reason in message and str(path) in message and "\n" not in message


def test_unreadable_file(media_dir: Path, ntsc_mp4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 000 does not stop root (these tests may run as root), so the OS error is simulated
    def denied(path: str, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(container.av, "open", denied)
    with pytest.raises(MediaError, match="permission denied") as caught:
        probe(ntsc_mp4)
    assert str(ntsc_mp4) in str(caught.value)
    if os.geteuid() != 0:  # and for real where the OS enforces it
        monkeypatch.undo()
        locked = make_text_as_mp4(media_dir / "locked.mp4")
        locked.chmod(0)
        with pytest.raises(MediaError, match="cannot read"):
            probe(locked)


def test_audio_only_probe_without_video_requirement(media_dir: Path) -> None:
    info = probe(make_audio_only(media_dir / "tone.m4a"), require_video=False)
    assert not info.has_video and info.has_audio and info.audio_rate_hz == 44100


def test_no_audio_stream(media_dir: Path) -> None:
    path = make_video(media_dir / "silent.mp4", audio=False)
    assert not probe(path).has_audio
    assert len(list(iter_frames(path, 30))) == 60
    with pytest.raises(MediaError, match="has no audio stream") as caught:
        read_audio(path)
    assert str(path) in str(caught.value)
    with pytest.raises(MediaError, match="has no audio stream"), clip_streams(path, 30, 1000):
        pass


def test_truncated_grid_decodes_what_it_can(grid_files: list[Path], media_dir: Path) -> None:
    path = make_truncated_copy(grid_files[0], media_dir / "truncated.mpg", fraction=0.4)
    n = count_frames(path)
    assert 0 < n < 75
    frames = list(iter_frames(path, 25))
    assert abs(len(frames) - n) <= 1
    wav = read_audio(path)
    assert 0 < len(wav) < 47000


def test_wrong_header_frame_count(media_dir: Path) -> None:
    path = make_wrong_header_count(media_dir / "cut.mp4", fps="30000/1001", duration_s=2.0)
    info = probe(path)
    n = count_frames(path)
    assert info.header_frames == 60  # the moov index still lists every frame
    assert 0 < n < info.header_frames
    frames = list(iter_frames(path, 30))
    assert abs(len(frames) - math.floor(n / NTSC * 30)) <= 1
    assert all(f.time_s == i / 30 for i, f in enumerate(frames))


def test_avi_is_read(media_dir: Path) -> None:
    path = make_video(media_dir / "clip.avi", fps="25", duration_s=1.0)
    assert count_frames(path) == 25
    assert probe(path).avg_fps == 25.0
    assert len(list(iter_frames(path, 30))) == 30


# ------------------------------------------------------------------ streaming memory


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * PAGE_BYTES


def _trim_heap() -> None:
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss_growth(path: Path, keep: bool = False) -> int:
    """Peak resident-memory growth while iterating ``path`` (sampled every 10 frames).

    RSS, not tracemalloc: PyAV's frame buffers live in libav memory that tracemalloc
    does not see. Free heap left by earlier tests is handed back to the OS first
    (glibc's ``malloc_trim``), so that a kept frame shows up as growth instead of
    filling memory freed before the measurement.
    """
    _trim_heap()
    base = peak = _rss_bytes()
    kept = []
    for frame in iter_frames(path, 25):
        if keep:
            kept.append(frame.image)
        if frame.index % 10 == 0:
            peak = max(peak, _rss_bytes())
    assert kept or not keep
    return peak - base


def test_memory_does_not_grow_with_length(media_dir: Path) -> None:
    short = make_video(media_dir / "short.mp4", fps="25", duration_s=2, size="320x240",
                       audio=False)
    long = make_video(media_dir / "long.mp4", fps="25", duration_s=20, size="320x240",
                      audio=False)
    frame_bytes = 320 * 240 * 3
    _rss_growth(long)  # warm up decoder pools and imports
    growth_short = _rss_growth(short)
    growth_long = _rss_growth(long)
    # the measurement can see a leak: keeping the long video's 500 frames shows up, even
    # though the allocator may serve part of them from memory freed by earlier runs
    growth_kept = _rss_growth(long, keep=True)
    assert growth_kept > 150 * frame_bytes
    assert growth_long < growth_short + 20 * frame_bytes
    assert growth_long < 50 * frame_bytes


# ------------------------------------------------------------------ audio samples to mono


# Left and right test signals as int16; their average in [-1, 1] is MONO below.
LEFT = np.array([16384, -16384, 0, 32767, -32768, 100, 200, 300], np.int16)
RIGHT = np.array([16384, 16384, 0, 32767, -32768, -100, 0, 300], np.int16)
MONO = (LEFT.astype(np.float64) + RIGHT) / 2 / 32768  # 0.5, 0, 0, ~1, -1, 0, ...


def _audio_frame(samples: np.ndarray, fmt: str, layout: str, rate: int = 44100) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def _mono(frame: av.AudioFrame) -> tuple[str, list[np.ndarray], np.ndarray]:
    name, channels = audio.channel_arrays(frame)
    return name, channels, audio.mono_float(name, [[c] for c in channels])


@pytest.mark.parametrize(
    ("fmt", "samples"),
    [
        ("s16", np.stack([LEFT, RIGHT], axis=1).reshape(1, -1)),  # packed: L R L R ...
        ("s16p", np.stack([LEFT, RIGHT])),
        ("s32p", np.stack([LEFT, RIGHT]).astype(np.int32) << 16),
        ("fltp", np.stack([LEFT, RIGHT]).astype(np.float32) / 32768),
        ("flt", (np.stack([LEFT, RIGHT], axis=1).reshape(1, -1) / 32768).astype(np.float32)),
        ("dblp", np.stack([LEFT, RIGHT]).astype(np.float64) / 32768),
    ],
)
def test_stereo_frames_average_to_mono_in_unit_range(fmt: str, samples: np.ndarray) -> None:
    name, channels, mono = _mono(_audio_frame(samples, fmt, "stereo"))
    assert name == fmt.rstrip("p")
    assert len(channels) == 2 and all(len(c) == 8 for c in channels)
    scale = {"s16": 1, "s32": 65536, "flt": 1 / 32768, "dbl": 1 / 32768}[name]
    np.testing.assert_allclose(channels[0], LEFT.astype(np.float64) * scale, rtol=1e-6)
    np.testing.assert_allclose(channels[1], RIGHT.astype(np.float64) * scale, rtol=1e-6)
    assert mono.dtype == np.float32 and mono.shape == (8,)
    np.testing.assert_allclose(mono, MONO, atol=1e-6)
    assert mono[0] == 0.5 and mono[4] == -1.0  # 16384 -> 0.5, -32768 -> -1


def test_unsigned_8_bit_mono_is_centred() -> None:
    frame = _audio_frame(np.array([[192, 64, 128, 0, 255]], np.uint8), "u8", "mono")
    name, channels, mono = _mono(frame)
    assert name == "u8" and len(channels) == 1
    np.testing.assert_array_equal(mono, np.array([0.5, -0.5, 0.0, -1.0, 127 / 128], np.float32))


@pytest.mark.parametrize("fmt", ["s64p", "s64"])
def test_64_bit_samples_go_through_ffmpeg_to_float(fmt: str) -> None:
    left, right = LEFT.astype(np.int64) << 48, RIGHT.astype(np.int64) << 48
    frame = av.AudioFrame(format=fmt, layout="stereo", samples=8)  # from_ndarray lacks s64
    frame.sample_rate = 48000
    if fmt == "s64p":
        frame.planes[0].update(left.tobytes())
        frame.planes[1].update(right.tobytes())
    else:
        frame.planes[0].update(np.stack([left, right], axis=1).tobytes())
    name, channels, mono = _mono(frame)
    assert name == "flt" and [len(c) for c in channels] == [8, 8]
    np.testing.assert_allclose(mono, MONO, atol=1e-6)


def test_mono_float_joins_each_channels_parts_in_order() -> None:
    first = _audio_frame(np.stack([LEFT[:3], RIGHT[:3]]), "s16p", "stereo")
    second = _audio_frame(np.stack([LEFT[3:], RIGHT[3:]]), "s16p", "stereo")
    (_, a), (_, b) = audio.channel_arrays(first), audio.channel_arrays(second)
    mono = audio.mono_float("s16", [[a[0], b[0]], [a[1], b[1]]])
    np.testing.assert_allclose(mono, MONO, atol=1e-6)


# ------------------------------------------------------------------ resampled tone


@pytest.fixture(scope="module", params=[44100, 48000], ids=["44k1", "48k"])
def tone_mkv(request: pytest.FixtureRequest, media_dir: Path) -> Path:
    """2 s of 440 Hz sine at half full scale, stereo PCM (lossless) at 44.1 or 48 kHz."""
    return make_video(media_dir / f"tone_{request.param}.mkv", fps="25", duration_s=2.0,
                      audio_rate_hz=request.param, tone_hz=440.0)


def test_tone_resampled_to_16k_keeps_length_pitch_and_level(tone_mkv: Path) -> None:
    wav = read_audio(tone_mkv, SR)
    assert wav.dtype == np.int16
    assert abs(len(wav) - 2 * SR) <= 2  # measured: exactly 32000
    samples = wav.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    peak_hz = np.argmax(spectrum) * SR / len(samples)
    assert peak_hz == pytest.approx(440.0, abs=SR / len(samples))  # within one FFT bin
    expected_rms = 0.5 * 32768 / np.sqrt(2)
    rms = np.sqrt(np.mean(samples[SR // 10 : -SR // 10] ** 2))
    assert rms == pytest.approx(expected_rms, rel=0.01)  # measured: ratio 1.0000
    # sample k is the tone at k / 16000 s: no delay, no drift (soxr is delay-compensated);
    # measured: within 1.03 LSB of the analytic sine from sample 50 to 50 before the end
    ideal = 0.5 * 32768 * np.sin(2 * np.pi * 440.0 * np.arange(len(samples)) / SR)
    assert np.abs(samples - ideal)[50:-50].max() <= 3


def test_resampled_tone_does_not_depend_on_batching(
    tone_mkv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flushing the resampler every decoded frame or once at the end gives the same samples."""
    default = read_audio(tone_mkv, SR).astype(np.int32)
    blocks = list(iter_audio_blocks(tone_mkv, 5000, SR))
    assert [len(b) for b in blocks] == [5000] * 6 + [2000]
    assert np.array_equal(np.concatenate(blocks), default)
    for batch in (1, 10**9):
        monkeypatch.setattr(audio, "RESAMPLE_BATCH_SAMPLES", batch)
        # measured: identical (0 difference) for batches of 1, 1000, 16384 and 10**9
        assert np.abs(read_audio(tone_mkv, SR).astype(np.int32) - default).max() <= 1


# ------------------------------------------------------------------ one pass for both streams


def _separately(path: Path, fps: float, block: int, pixels: str = "rgb") -> tuple[list, list]:
    frames = [(f.index, f.time_s, f.source_time_s, f.image) for f in
              iter_frames(path, fps, pixels=pixels)]
    return frames, list(iter_audio_blocks(path, block))


def _same_frames(one: list, other: list) -> bool:
    def pixels(image):
        return image.i420() if hasattr(image, "i420") else image

    return len(one) == len(other) and all(
        a[:3] == b[:3] and np.array_equal(pixels(a[3]), pixels(b[3]))
        for a, b in zip(one, other, strict=True)
    )


@pytest.mark.parametrize("audio_first", [False, True])
def test_clip_streams_read_what_the_separate_readers_read(
    grid_files: list[Path], ntsc_mp4: Path, audio_first: bool
) -> None:
    for path, fps, pixels in ((grid_files[0], 25, "yuv"), (ntsc_mp4, 25, "rgb")):
        frames_ref, blocks_ref = _separately(path, fps, 16000, pixels)
        with clip_streams(path, fps, 16000, pixels=pixels) as (frames, blocks):
            if audio_first:  # every video packet is queued while the audio is read
                got_blocks = list(blocks)
                got_frames = [(f.index, f.time_s, f.source_time_s, f.image) for f in frames]
            else:
                got_frames = [(f.index, f.time_s, f.source_time_s, f.image) for f in frames]
                got_blocks = list(blocks)
        assert _same_frames(got_frames, frames_ref)
        assert len(got_blocks) == len(blocks_ref)
        assert all(np.array_equal(a, b) for a, b in zip(got_blocks, blocks_ref, strict=True))


def test_clip_streams_interleaved_clip_by_clip(ntsc_mp4: Path) -> None:
    frames_ref, blocks_ref = _separately(ntsc_mp4, 30, 8000)
    got_frames, got_blocks = [], []
    with clip_streams(ntsc_mp4, 30, 8000) as (frames, blocks):
        for frame in frames:
            got_frames.append((frame.index, frame.time_s, frame.source_time_s, frame.image))
            if frame.index % 15 == 14:  # a block (0.5 s) after every 15 frames (0.5 s)
                got_blocks.append(next(blocks))
        got_blocks += list(blocks)
    assert _same_frames(got_frames, frames_ref)
    assert all(np.array_equal(a, b) for a, b in zip(got_blocks, blocks_ref, strict=True))


def test_clip_streams_refuse_streams_too_far_apart(
    ntsc_mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(container._PacketRouter, "MAX_QUEUED", 5)
    with clip_streams(ntsc_mp4, 30, 8000) as (frames, blocks):
        with pytest.raises(MediaError, match="too far apart") as caught:
            list(blocks)  # reading all audio first queues the video packets
    assert str(ntsc_mp4) in str(caught.value)
