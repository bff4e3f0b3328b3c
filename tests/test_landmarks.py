"""FaceMesh landmarks on the tracked face, and the landmark-aligned mouth crops they place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipflow.tasks.faces.alignment import (
    STABLE_POINTS,
    STABLE_TEMPLATE,
    aligned_transforms,
    similarity,
    warp_grey_yuv,
)
from lipflow.tasks.faces.crops import VCAGAN_WINDOW, MouthWindow
from lipflow.tasks.faces.detection import shared_detector
from lipflow.tasks.faces.landmarks import (
    INNER_LIPS,
    LIP_CORNERS,
    MODEL_PATH,
    NUM_POINTS,
    FaceMesh,
    face_landmarks,
)
from lipflow.tasks.faces.tracking import track_face, tracking_options
from lipflow.tasks.media.video import iter_frames
from lipflow.tasks.media.yuv import RgbFrames
from lipflow.tasks.prepare.window_crops import WindowCropper

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "grid" / "s1" / "bbaf2n.mpg"


@pytest.fixture(scope="module")
def clip():
    frames = [f.image for f in iter_frames(SAMPLE, 25.0, end_s=3.0, pixels="yuv")]
    track = track_face(RgbFrames(frames), shared_detector({}), **tracking_options({}))
    assert track.kept
    return frames, track


def test_model_is_committed_with_its_licence():
    assert MODEL_PATH.stat().st_size == 1_242_398
    sources = (MODEL_PATH.parent / "SOURCES.md").read_text()
    assert "face_landmark.tflite" in sources and "Apache License 2.0" in sources
    assert "face_landmark.tflite" in (MODEL_PATH.parent / "SHA256SUMS").read_text()


def test_landmarks_sit_on_the_tracked_face(clip):
    frames, track = clip
    marks = face_landmarks(frames, track.boxes)
    assert marks.points.shape == (len(frames), NUM_POINTS, 2)
    assert (marks.presence > 0.9).all()
    x, y, w, h = track.boxes.mean(axis=0)
    lips = marks.points[:, list(LIP_CORNERS)].mean(axis=1)
    # the mouth is inside the face box, in its lower half
    assert ((lips[:, 0] > x) & (lips[:, 0] < x + w)).all()
    assert ((lips[:, 1] > y + h / 2) & (lips[:, 1] < y + h)).all()
    # GRID speaker talks: the inner lips open on some frames and close on others
    gap = np.linalg.norm(marks.points[:, INNER_LIPS[1]] - marks.points[:, INNER_LIPS[0]], axis=1)
    assert gap.min() < 0.3 * gap.max() and gap.max() > 3.0


def test_strided_landmarks_match_every_frame_where_computed(clip):
    frames, track = clip
    full = face_landmarks(frames, track.boxes)
    strided = face_landmarks(frames, track.boxes, every=2)
    assert np.allclose(strided.points[::2], full.points[::2], atol=1e-3)
    between = np.abs(strided.points[1::2] - full.points[1::2]).mean()
    assert between < 1.5  # interpolated frames are close to the model's own answer
    assert full.measured is None  # every frame measured
    third = face_landmarks(frames, track.boxes, every=3)
    expected = np.zeros(len(frames), dtype=bool)
    expected[::3] = expected[-1] = True
    assert np.array_equal(third.measured, expected)
    assert np.allclose(third.points[expected], full.points[expected], atol=1e-3)


def test_tail_frames_go_through_a_smaller_batch_not_padding(clip):
    frames, track = clip
    mesh = FaceMesh()
    assert mesh._batches(26) == [(0, 8, 8), (8, 8, 8), (16, 8, 8), (24, 2, 2)]
    assert mesh._batches(20) == [(0, 8, 8), (8, 8, 8), (16, 4, 4)]
    assert mesh._batches(3) == [(0, 3, 4)]
    assert mesh._batches(8) == [(0, 8, 8)]
    # a frame's landmarks do not depend on the batch it went through
    eleven = face_landmarks(frames[:11], track.boxes[:11], mesh=mesh)  # 8 + 4 (3 used)
    alone = face_landmarks(frames[8:11], track.boxes[8:11], mesh=mesh)  # 4 (3 used)
    assert np.allclose(eleven.points[8:], alone.points, atol=1e-3)


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (3, 5, 2))
    angle, scale, shift = 0.2, 1.7, np.array([5.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src[1] @ rot.T + shift
    maps = similarity(src, dst)
    assert np.allclose(maps[1, :, :2], rot) and np.allclose(maps[1, :, 2], shift)


def test_aligned_window_undoes_roll_and_scale_and_centres_the_mouth():
    # a template face rotated by 15 degrees, scaled 2x and moved: the stable points land
    # on the template (times the window scale) in every frame
    window = MouthWindow(96, 96)
    angle = np.deg2rad(15)
    rot = 2.0 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = np.zeros((4, NUM_POINTS, 2))
    points[:, list(STABLE_POINTS)] = STABLE_TEMPLATE @ rot.T + [40.0, 10.0]
    mouth = np.array([128.0, 170.0]) @ rot.T + [40.0, 10.0]
    points[:, [61, 291, 0, 17]] = mouth  # a mouth centre straight below the nose
    maps = aligned_transforms(points, window)
    mapped = (STABLE_TEMPLATE @ rot.T + [40.0, 10.0]) @ maps[0, :, :2].T + maps[0, :, 2]
    offset = mapped - STABLE_TEMPLATE  # the template itself, moved by one shift
    assert np.allclose(offset, offset[0], atol=1e-9)
    assert np.allclose(maps[0, :, :2], np.linalg.inv(rot), atol=1e-9)
    centre = maps[0, :, :2] @ mouth + maps[0, :, 2]
    assert np.allclose(centre, [47.5, 47.5])


def test_cropper_uses_landmarks_by_default_and_keypoints_on_request(clip):
    frames, _ = clip
    by_landmarks = WindowCropper({}, streams=("mouth",))(frames, len(frames))
    by_keypoints = WindowCropper({"mouth_alignment": "keypoints", "quality_signals": False},
                                 streams=("mouth",))(frames, len(frames))
    assert by_landmarks.landmarks is not None and by_keypoints.landmarks is None
    assert by_landmarks.mouth.shape == by_keypoints.mouth.shape == (len(frames), 96, 96)
    # both cut the same region: the crops look alike, but not identical
    diff = np.abs(by_landmarks.mouth.astype(int) - by_keypoints.mouth.astype(int)).mean()
    assert 0 < diff < 40
    vcagan = WindowCropper({"mouth_preset": "vcagan"}, streams=("mouth",))(frames, len(frames))
    assert vcagan.mouth.shape == (len(frames), VCAGAN_WINDOW.height_px, VCAGAN_WINDOW.width_px)


def test_short_window_pads_landmarks_to_the_window(clip):
    frames, _ = clip
    crops = WindowCropper({})(frames[:40], 75)
    assert crops.landmarks.points.shape[0] == 75
    assert np.allclose(crops.landmarks.points[40:], crops.landmarks.points[39])
    assert not crops.landmarks.measured[40:].any() and crops.landmarks.measured[39]


def test_warp_needs_one_map_per_frame(clip):
    frames, _ = clip
    with pytest.raises(ValueError, match="transforms"):
        warp_grey_yuv(frames[:3], np.zeros((2, 2, 3)), 8, 8)
