"""Face tracking: real GRID clips, no-face and two-face clips, and synthetic detections."""

from __future__ import annotations

import numpy as np
import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.faces.tracking import (
    NO_FACE,
    TWO_FACES,
    box_iou,
    detection_frames,
    fill_gaps,
    smooth,
    track_face,
    track_from_detections,
)
from tests.support.faces import (  # noqa: F401
    face_detector,
    grid_frames,
    make_face,
    noise_frames,
    write_testsrc,
)


class CountingDetector:
    """Replays synthetic detections per frame index and counts the calls."""

    def __init__(self, per_frame):
        self.per_frame = per_frame
        self.calls: list[int] = []

    def detect(self, frame):
        index = int(frame[0, 0, 0])
        self.calls.append(index)
        return self.per_frame(index)


def indexed_frames(count: int) -> np.ndarray:
    frames = np.zeros((count, 4, 4, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(count)
    return frames


def test_grid_clip_is_tracked_on_every_frame(face_detector):  # noqa: F811
    frames = grid_frames("s1/bbaf2n.mpg")
    track = track_face(frames, face_detector, detect_every_frames=1)
    assert track.kept and track.reject_reason is None
    assert track.detection_rate == pytest.approx(1.0)
    assert track.boxes.shape == (75, 4) and track.keypoints.shape == (75, 6, 2)
    assert track.detected.all() and np.isfinite(track.boxes).all()
    assert 90 < track.mean_face_px < 200
    assert 0 < track.keypoint_jitter < 0.02


def test_strided_grid_track_stays_close_to_every_frame_track(face_detector):  # noqa: F811
    frames = grid_frames("s25/bbwx8n.mpg")
    full = track_face(frames, face_detector, detect_every_frames=1)
    strided = track_face(frames, face_detector, detect_every_frames=5)
    assert strided.kept
    assert strided.attempted.sum() == 16 and strided.detected.sum() == 16
    deviation = np.abs(strided.boxes - full.boxes).mean() / full.mean_face_px
    assert deviation < 0.02


def test_no_face_clip_is_rejected(face_detector, tmp_path):  # noqa: F811
    import av

    video = write_testsrc(tmp_path / "testsrc.mp4", seconds=0.4)
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for clip in (frames, noise_frames(5)):
        track = track_face(clip, face_detector)
        assert track.reject_reason == NO_FACE
        assert track.detection_rate == 0.0 and not track.detected.any()
        assert np.isnan(track.boxes).all()


def test_two_similar_faces_reject_or_keep_the_largest(face_detector):  # noqa: F811
    left, right = grid_frames("s1/bbaf2n.mpg")[:8], grid_frames("s16/bgal9n.mpg")[:8]
    frames = [np.hstack([a, b]) for a, b in zip(left, right, strict=True)]
    both = face_detector.detect(frames[0])
    assert len(both) == 2
    assert min(f.box[0] for f in both) < 360 < max(f.box[0] for f in both)
    rejected = track_face(frames, face_detector, second_face="reject",
                          second_face_area_ratio=0.6)
    assert rejected.reject_reason is not None
    assert rejected.reject_reason.startswith(TWO_FACES)

    kept = track_face(frames, face_detector, second_face="keep_largest",
                      second_face_area_ratio=0.6, smooth_window_frames=1)
    assert kept.kept
    largest = max(both, key=lambda f: f.area)
    assert kept.boxes[0, 0] == pytest.approx(largest.box[0], abs=3)


def test_small_second_face_does_not_reject():
    def faces(t):
        return [make_face(100, 100, 120), make_face(400, 50, 40)]

    track = track_from_detections([faces(t) for t in range(10)], second_face="reject")
    assert track.kept
    assert track.boxes[0, 0] == pytest.approx(100)


def test_track_follows_overlap_not_size():
    """A bigger face appearing elsewhere mid-clip does not take over the track."""
    dets = [[make_face(100 + t, 100, 100)] for t in range(6)]
    dets += [[make_face(400, 100, 150), make_face(106 + t, 100, 100)] for t in range(6)]
    track = track_from_detections(dets, smooth_window_frames=1, second_face="keep_largest")
    assert track.kept
    assert np.all(track.boxes[:, 0] < 200)


def test_face_jump_without_overlap_counts_as_a_miss():
    dets = [[make_face(50, 100, 80)] for _ in range(5)] + [[make_face(300, 100, 80)]] * 5
    track = track_from_detections(dets, smooth_window_frames=1, min_detection_rate=0.8)
    assert track.detection_rate == pytest.approx(0.5)
    assert track.reject_reason == "detection rate 0.50 below 0.80"
    assert np.allclose(track.boxes[:, 0], 50)  # held, not jumped


def test_missed_frames_are_interpolated_and_edges_held():
    dets: list = [[] for _ in range(12)]
    dets[2] = [make_face(100, 100, 100)]
    dets[8] = [make_face(160, 130, 130)]
    track = track_from_detections(dets, smooth_window_frames=1, min_detection_rate=0.0)
    assert track.kept
    assert np.allclose(track.boxes[:3, 0], 100)  # held before the first detection
    assert np.allclose(track.boxes[8:, 0], 160)  # held after the last
    assert np.allclose(track.boxes[2:9, 0], np.linspace(100, 160, 7))
    assert np.allclose(track.boxes[5], [130, 115, 115, 115])
    expected_kps = (make_face(100, 100, 100).keypoints + make_face(160, 130, 130).keypoints) / 2
    assert np.allclose(track.keypoints[5], expected_kps)
    assert track.detection_rate == pytest.approx(2 / 12)


def test_low_detection_rate_is_rejected_with_the_rate():
    dets = [[make_face(100, 100, 100)] if t % 3 == 0 else [] for t in range(30)]
    track = track_from_detections(dets, min_detection_rate=0.8)
    assert track.reject_reason == "detection rate 0.33 below 0.80"
    assert np.isfinite(track.boxes).all()


def test_smoothing_reduces_keypoint_jitter():
    rng = np.random.default_rng(1)
    dets = []
    for t in range(75):
        face = make_face(100 + 0.2 * t, 100, 120)
        noisy = face.keypoints + rng.normal(0, 2.0, face.keypoints.shape)
        box = face.box + rng.normal(0, 2.0, 4)
        dets.append([type(face)(box=box, score=face.score, keypoints=noisy)])
    raw = track_from_detections(dets, smooth_window_frames=1)
    smoothed = track_from_detections(dets, smooth_window_frames=5)
    assert smoothed.keypoint_jitter < 0.6 * raw.keypoint_jitter
    truth = np.array([make_face(100 + 0.2 * t, 100, 120).keypoints for t in range(75)])
    assert np.abs(smoothed.keypoints - truth).mean() < np.abs(raw.keypoints - truth).mean()


def test_strided_detection_calls_the_detector_on_every_kth_frame_and_the_last():
    detector = CountingDetector(lambda t: [make_face(100 + t, 100, 100)])
    track = track_face(indexed_frames(75), detector, detect_every_frames=5,
                       smooth_window_frames=1)
    assert detector.calls == [*range(0, 75, 5), 74]
    assert track.detection_rate == 1.0 and track.attempted.sum() == 16
    assert np.allclose(track.boxes[:, 0], 100 + np.arange(75))  # linear motion recovered


def test_padding_frames_are_not_detected_and_hold_the_last_face():
    detector = CountingDetector(lambda t: [make_face(100 + t, 100, 100)])
    track = track_face(indexed_frames(20), detector, valid_frames=12, smooth_window_frames=1)
    assert max(detector.calls) == 11
    assert track.detection_rate == 1.0
    assert np.allclose(track.boxes[12:, 0], 111)


def test_helpers():
    assert list(detection_frames(10, 3)) == [0, 3, 6, 9]
    assert list(detection_frames(11, 3)) == [0, 3, 6, 9, 10]
    assert list(detection_frames(0, 3)) == []
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 10, 10])) == pytest.approx(1 / 3)
    assert box_iou(np.array([0, 0, 10, 10]), np.array([20, 0, 10, 10])) == 0.0
    values = np.array([0.0, np.nan, np.nan, 3.0])
    assert np.allclose(fill_gaps(values, np.isfinite(values)), [0, 1, 2, 3])
    steps = np.array([0.0, 0, 0, 9, 0, 0, 0])
    assert smooth(steps, 3)[3] == pytest.approx(3.0)
    assert np.allclose(smooth(steps, 4), smooth(steps, 5))  # even windows stay centred


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="second_face must be"):
        track_from_detections([[]], second_face="ignore")
    with pytest.raises(ConfigError, match="detect_every_frames"):
        track_face(indexed_frames(3), CountingDetector(lambda t: []), detect_every_frames=0)


def test_a_lost_face_is_located_by_bisection_not_by_detecting_every_frame():
    detector = CountingDetector(lambda t: [make_face(100, 100, 100)] if t < 37 else [])
    track = track_face(indexed_frames(75), detector, detect_every_frames=25,
                       refine_motion=0.05, smooth_window_frames=1, min_detection_rate=0.0)
    assert sorted(detector.calls) == [0, 25, 31, 34, 35, 36, 37, 50, 74]
    assert track.detected[36] and not track.detected[37]
    assert track.attempted.sum() == 9


def test_one_missed_strided_detection_is_refined_and_the_clip_kept():
    detector = CountingDetector(lambda t: [] if t == 25 else [make_face(100, 100, 100)])
    plain = track_face(indexed_frames(75), detector, detect_every_frames=25,
                       smooth_window_frames=1)
    assert plain.reject_reason == "detection rate 0.75 below 0.80"
    detector.calls.clear()
    refined = track_face(indexed_frames(75), detector, detect_every_frames=25,
                         refine_motion=0.05, smooth_window_frames=1)
    assert refined.kept and refined.detection_rate > 0.8
    assert {24, 26} <= set(detector.calls)  # bisected down to the missed frame's neighbours


def test_a_head_move_between_strided_detections_is_refined():
    # The face jumps 60 px at frame 40: a 25-frame stride alone interpolates a slow slide.
    def x(t: int) -> float:
        return 100.0 if t < 40 else 160.0

    detector = CountingDetector(lambda t: [make_face(x(t), 100, 100)])
    truth = np.array([x(t) for t in range(75)])
    plain = track_face(indexed_frames(75), detector, detect_every_frames=25,
                       smooth_window_frames=1)
    refined = track_face(indexed_frames(75), detector, detect_every_frames=25,
                         refine_motion=0.05, smooth_window_frames=1)
    plain_err = np.abs(plain.boxes[:, 0] - truth).mean()
    refined_err = np.abs(refined.boxes[:, 0] - truth).mean()
    assert refined_err < 0.1 * plain_err
    assert refined.attempted.sum() <= 4 + 6  # anchors + about log2(25) bisections


def test_refinement_leaves_still_and_faceless_clips_at_the_stride():
    still = CountingDetector(lambda t: [make_face(100, 100, 100)])
    track_face(indexed_frames(75), still, detect_every_frames=25, refine_motion=0.05)
    assert still.calls == [0, 25, 50, 74]
    empty = CountingDetector(lambda t: [])
    track = track_face(indexed_frames(75), empty, detect_every_frames=25, refine_motion=0.05)
    assert empty.calls == [0, 25, 50, 74] and track.reject_reason == NO_FACE
    with pytest.raises(ConfigError, match="refine_motion"):
        track_face(indexed_frames(3), empty, refine_motion=-1.0)
