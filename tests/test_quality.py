"""Per-clip quality signals: damage, repeated frames, mouth occlusion, audio-visual offset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipflow.tasks.contracts.clip_manifest import CLIP_COLUMNS, write_clip_manifest
from lipflow.tasks.faces.landmarks import NUM_POINTS, Landmarks
from lipflow.tasks.faces.tracking import detection_frames, fill_gaps
from lipflow.tasks.media.yuv import YuvFrame
from lipflow.tasks.prepare.quality import (
    CORRUPT,
    QUALITY_COLUMNS,
    FrameFlags,
    av_offset,
    damaged_frames,
    duplicate_frame_frac,
    fitted_lip_openings,
    lip_openings,
    lip_signals,
    mouth_darkness,
    mouth_occluded,
    quality_reason,
)
from lipflow.tasks.prepare.video import VideoSettings, order_rows, preprocess_video
from lipflow.tasks.settings.schema import Preprocess

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "grid" / "s1"


def _yuv(y: np.ndarray) -> YuvFrame:
    h, w = y.shape
    return YuvFrame(y, np.full((h // 2, w // 2), 128, np.uint8),
                    np.full((h // 2, w // 2), 128, np.uint8))


def test_flat_grey_frames_are_damage_but_black_ones_are_fades():
    rng = np.random.default_rng(0)
    picture = _yuv(rng.integers(16, 235, (64, 64), dtype=np.uint8))
    grey = _yuv(np.full((64, 64), 128, np.uint8))
    black = _yuv(np.full((64, 64), 16, np.uint8))
    assert damaged_frames([picture, grey, black, grey]) == 2


def test_repeated_source_frames_count_but_resampler_repeats_do_not():
    rng = np.random.default_rng(1)
    a, b, c = (_yuv(rng.integers(16, 235, (32, 32), dtype=np.uint8)) for _ in range(3))
    a_again = _yuv(a.y.copy())  # a new decoded frame with the same picture
    assert duplicate_frame_frac([a, a_again, b, c]) == pytest.approx(1 / 3)
    assert duplicate_frame_frac([a, a, b, b, c]) == 0.0  # the same object: the resampler's
    assert duplicate_frame_frac([a]) == 0.0


def _face(frames: int = 10) -> Landmarks:
    """A plausible face: eyes at y 100, nose at 140, mouth 60 wide at y 170."""
    p = np.zeros((frames, NUM_POINTS, 2))
    p[:, [33, 133, 362, 263]] = [[80, 100], [110, 100], [146, 100], [176, 100]]
    p[:, 1] = [128, 140]
    p[:, 61], p[:, 291] = [98, 170], [158, 170]
    p[:, 13], p[:, 14] = [128, 168], [128, 172]
    return Landmarks(p, np.ones(frames))


def test_mouth_occlusion_from_presence_and_implausible_shapes():
    face = _face()
    assert not mouth_occluded(face).any()
    presence = face.presence.copy()
    presence[:3] = 0.1  # a hand over the face: the model loses it
    points = face.points.copy()
    points[5, 291] = [300, 170]  # lips twice as wide as the eye span
    points[6, 13], points[6, 14] = [128, 180], [128, 165]  # inner lips crossed
    flags = mouth_occluded(Landmarks(points, presence))
    assert flags.tolist() == [True] * 3 + [False, False, True, True] + [False] * 3


def test_turned_or_tilted_heads_are_not_occlusion_but_a_collapsed_mouth_is():
    """A head turned to profile foreshortens the lips and the eye span alike (LRS3 profile
    frames were flagged when lips were measured against the eye-to-mouth height); a head
    tilted down shortens that height alone."""
    face = _face(3)
    turned = face.points.copy()
    turned[..., 0] = 128 + (turned[..., 0] - 128) * np.cos(np.radians(70))
    tilted = face.points.copy()
    tilted[..., 1] = 140 + (tilted[..., 1] - 140) * 0.5
    narrow = face.points.copy()
    narrow[:, 61], narrow[:, 291] = [120, 170], [136, 170]  # lips a sixth of the eye span
    assert not mouth_occluded(Landmarks(turned, face.presence)).any()
    assert not mouth_occluded(Landmarks(tilted, face.presence)).any()
    assert mouth_occluded(Landmarks(narrow, face.presence)).all()


def test_av_offset_recovers_a_known_shift_and_says_none_for_flat_signals():
    rng = np.random.default_rng(2)
    aperture = np.convolve(rng.random(75), np.ones(3) / 3, mode="same")
    for shift in (-7, 0, 4):
        envelope = np.roll(aperture, shift) * 5 + rng.normal(0, 0.05, 75)
        found = av_offset(aperture, envelope)
        assert found is not None and found.frames == shift and found.confidence > 0.3
    assert av_offset(np.zeros(75), aperture) is None
    assert av_offset(aperture[:20], aperture[:20]) is None


def _talking(frames: int = 75, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(aperture (T,), mouth crops (T, 48, 48) uint8): a dark mouth opening as tall as
    the aperture on a lit face, closures as short as a real one (2 frames), and noise."""
    rng = np.random.default_rng(seed)
    aperture = np.clip(np.convolve(rng.normal(0, 1, frames), np.ones(2) / 2, "same"), 0, None)
    rows = np.arange(48)[:, None]
    cols = np.arange(48)[None, :]
    crops = np.empty((frames, 48, 48))
    for t, a in enumerate(aperture):
        inside = ((cols - 24) / 12.0) ** 2 + ((rows - 26) / (1e-3 + 5 * a)) ** 2 < 1
        crops[t] = np.where(inside, 40.0, 170.0) + rng.normal(0, 4, (48, 48))
    return aperture, np.clip(crops, 0, 255).astype(np.uint8)


def _lips(aperture: np.ndarray, every: int) -> Landmarks:
    """Landmarks whose inner and outer lips open by ``aperture``, measured (as
    :func:`face_landmarks` leaves them) on every ``every``-th frame and the last."""
    face = _face(len(aperture))
    points = face.points.copy()
    points[:, 13, 1], points[:, 14, 1] = 170 - 10 * aperture, 170 + 10 * aperture
    points[:, 0, 1], points[:, 17, 1] = 166 - 10 * aperture, 174 + 10 * aperture
    known = np.zeros(len(aperture), dtype=bool)
    known[detection_frames(len(aperture), every)] = True
    if every == 1:
        return Landmarks(points, face.presence)
    return Landmarks(fill_gaps(np.where(known[:, None, None], points, 0), known),
                     face.presence, known)


def test_darkness_follows_the_opening_mouth():
    aperture, crops = _talking()
    assert np.corrcoef(mouth_darkness(crops), aperture)[0, 1] > 0.9
    colour = np.repeat(crops[..., None], 3, axis=3)
    assert np.allclose(mouth_darkness(colour), mouth_darkness(crops))


def test_lips_between_facemesh_frames_are_refitted_from_the_crops():
    aperture, crops = _talking()
    sparse = _lips(aperture, every=3)
    linear = lip_openings(sparse)[1]  # inner lips, interpolated between measured frames
    fitted = fitted_lip_openings(sparse, crops)[1]
    truth = lip_openings(_lips(aperture, every=1))[1]
    skipped = ~sparse.measured
    assert np.allclose(fitted[sparse.measured], truth[sparse.measured])  # kept as measured
    linear_err = np.abs(linear - truth)[skipped].mean()
    fitted_err = np.abs(fitted - truth)[skipped].mean()
    assert fitted_err < 0.5 * linear_err, (fitted_err, linear_err)


def test_lip_signals_fall_back_to_the_landmarks_without_crops_or_gaps():
    aperture, crops = _talking()
    every = _lips(aperture, every=1)
    assert np.array_equal(fitted_lip_openings(every, crops), lip_openings(every))
    sparse = _lips(aperture, every=3)
    assert np.array_equal(lip_signals(sparse), lip_openings(sparse))  # no crops: as before
    signals = lip_signals(sparse, crops)
    assert signals.shape == (3, len(aperture))
    assert np.array_equal(signals[2], mouth_darkness(crops))
    few = _lips(aperture[:8], every=4)  # 3 measured frames: too few to fit 4 components
    assert np.array_equal(fitted_lip_openings(few, crops[:8]), lip_openings(few))


def test_av_offset_from_sparse_lips_and_crops_recovers_a_known_shift():
    aperture, crops = _talking(frames=75, seed=3)
    sound = np.r_[np.zeros(4), aperture[:-4]]  # the sound 4 frames late
    signals = lip_signals(_lips(aperture, every=3), crops)
    assert av_offset(signals, sound).frames == 4


def test_thresholds_report_by_default_and_reject_when_set():
    signals = {"mouth_occluded_frac": 0.4, "duplicate_frame_frac": 0.3,
               "av_offset_frames": 6, "av_sync_confidence": 0.5}
    assert quality_reason(signals, Preprocess()) is None
    assert "mouth occluded in 0.40" in quality_reason(
        signals, Preprocess(max_mouth_occluded_frac=0.2))
    assert "repeated frames 0.30" in quality_reason(
        signals, Preprocess(max_duplicate_frame_frac=0.1))
    assert "offset +6 frames" in quality_reason(signals, Preprocess(max_abs_av_offset_frames=2))
    assert quality_reason(signals, Preprocess(max_abs_av_offset_frames=2,
                                              min_av_sync_confidence=0.8)) is None


def _record(name: str) -> dict:
    return {"corpus": "grid", "speaker": "s1", "utterance_id": Path(name).stem,
            "language": "en", "video_path": name}


def _prepare(folder: Path, name: str, tmp_path: Path, **pre) -> list[dict]:
    settings = VideoSettings(fps=25.0, preprocess=pre, features={})
    return preprocess_video(_record(name), folder, tmp_path, settings,
                            save=lambda clip, arrays: clip)


def test_sample_clips_get_quality_columns_in_a_valid_manifest(tmp_path):
    rows = _prepare(SAMPLE, "bbaf2n.mpg", tmp_path) + _prepare(SAMPLE, "bbal6n.mpg", tmp_path)
    assert all(r["kept"] for r in rows)
    for row in rows:
        assert set(QUALITY_COLUMNS) <= set(row)
        assert row["mouth_occluded_frac"] == 0.0 and row["duplicate_frame_frac"] == 0.0
        assert abs(row["av_offset_frames"]) <= 1 and row["av_sync_confidence"] > 0.1
    rows = order_rows([{k: v for k, v in r.items() if k != "clip_path"} for r in rows])
    write_clip_manifest(rows, tmp_path / "s1.parquet")
    assert set(QUALITY_COLUMNS) <= set(CLIP_COLUMNS)


def test_keypoint_path_without_signals_leaves_them_null(tmp_path):
    row = _prepare(SAMPLE, "bbaf2n.mpg", tmp_path, mouth_alignment="keypoints",
                   quality_signals=False)[0]
    assert row["kept"] and row["mouth_occluded_frac"] is None and row["av_offset_frames"] is None
    assert row["duplicate_frame_frac"] == 0.0  # needs no landmarks


def test_damaged_grid_file_is_rejected_as_corrupt_video(tmp_path):
    data = bytearray((SAMPLE / "bbaf2n.mpg").read_bytes())
    rng = np.random.default_rng(0)
    for offset in range(len(data) // 3, 2 * len(data) // 3, 4096):  # smear the middle
        data[offset : offset + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mpg").write_bytes(bytes(data))
    rows = _prepare(tmp_path, "damaged.mpg", tmp_path)
    assert len(rows) == 1 and not rows[0]["kept"]
    assert rows[0]["reject_reason"].startswith(CORRUPT)
    assert "frames with decode errors" in rows[0]["reject_reason"]
    tolerant = _prepare(tmp_path, "damaged.mpg", tmp_path, max_decode_error_frames=75)
    assert not (tolerant[0]["reject_reason"] or "").startswith(CORRUPT)


def test_truncated_grid_file_keeps_what_decoded_whole(tmp_path):
    # a cut download: its last decoded frame is partial (the decoder marks it corrupt),
    # the frames before it are whole, so the clip is kept short, not called corrupt
    data = (SAMPLE / "bbal6n.mpg").read_bytes()
    (tmp_path / "cut.mpg").write_bytes(data[: len(data) // 2])
    rows = _prepare(tmp_path, "cut.mpg", tmp_path)
    assert len(rows) == 1 and rows[0]["kept"], rows[0]["reject_reason"]
    assert 25 <= rows[0]["valid_frames"] < 75


def test_frame_flags_exempt_only_the_last_decoded_frame_of_an_ended_stream():
    class Frame:
        def __init__(self, image: object, corrupt: bool) -> None:
            self.image, self.corrupt = image, corrupt

    a, b, c = object(), object(), object()
    frames = [Frame(a, True), Frame(b, False), Frame(c, True), Frame(c, True)]
    flags = FrameFlags(frames)
    seen = iter(flags)
    next(seen), next(seen), next(seen)
    assert flags.count(0, 3) == 2  # stream not ended yet: every mark counts
    list(seen)
    assert flags.count(0, 4) == 1  # ended: the last image (shown twice) is the cut


def test_grey_first_frame_is_rejected_as_corrupt_video(tmp_path):
    # GRID's damaged MPEG streams start on a flat grey frame; make one from the sample
    import av

    out = tmp_path / "grey.mp4"
    with av.open(str(SAMPLE / "bbaf2n.mpg")) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 360, 288, "yuv420p"
        stream.options = {"qscale": "2"}
        audio = dst.add_stream("aac", rate=16000)
        frames = [f.to_ndarray(format="yuv420p") for f in src.decode(video=0)]
        frames[0][:288] = 128
        frames[0][288:] = 128
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 48000), np.int16), format="s16",
                                             layout="mono")
        silence.sample_rate = 16000
        for packet in [*audio.encode(silence), *audio.encode()]:
            dst.mux(packet)
    rows = _prepare(tmp_path, "grey.mp4", tmp_path)
    expected = f"{CORRUPT} (0 frames with decode errors, 1 flat grey, of 75)"
    assert rows[0]["reject_reason"] == expected
