"""MediaPipe face detection on real GRID frames, from the committed models only."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.faces.detection import (
    LEFT_EYE,
    MOUTH_CENTRE,
    NOSE_TIP,
    RIGHT_EYE,
    FaceDetector,
    close_shared_detectors,
    detector_from_params,
    model_path,
    shared_detector,
)
from tests.support.faces import face_detector, grid_frames, noise_frames  # noqa: F401


def test_grid_frame_has_one_face_with_mouth_in_lower_half(face_detector):  # noqa: F811
    frame = grid_frames("s1/bbaf2n.mpg")[10]
    faces = face_detector.detect(frame)
    assert len(faces) == 1
    face = faces[0]
    x, y, w, h = face.box
    assert face.score > 0.8
    assert 60 < w < 250 and 60 < h < 250
    assert face.keypoints.shape == (6, 2)
    mouth_x, mouth_y = face.keypoints[MOUTH_CENTRE]
    assert x <= mouth_x <= x + w
    assert y + h / 2 <= mouth_y <= y + h
    # subject's right eye is on the image's left; eyes above the nose, nose above the mouth
    assert face.keypoints[RIGHT_EYE, 0] < face.keypoints[LEFT_EYE, 0]
    assert face.keypoints[LEFT_EYE, 1] < face.keypoints[NOSE_TIP, 1] < mouth_y


def test_row_padded_frame_view_is_still_detected(face_detector):  # noqa: F811
    """PyAV frames are row-padded views; the wrapper must not hand MediaPipe a strided array."""
    frame = grid_frames("s16/bgal9n.mpg")[0]
    padded = np.zeros((frame.shape[0], frame.shape[1] + 8, 3), np.uint8)
    padded[:, : frame.shape[1]] = frame
    view = padded[:, : frame.shape[1]]
    assert not view.flags["C_CONTIGUOUS"]
    assert len(face_detector.detect(view)) == 1


def test_noise_has_no_face(face_detector):  # noqa: F811
    assert face_detector.detect(noise_frames(1)[0]) == []


def test_full_range_model_from_params_detects_the_face():
    frame = grid_frames("s25/bbwx8n.mpg")[5]
    with detector_from_params({"detector": "full_range", "min_face_score": 0.5}) as detector:
        faces = detector.detect(frame)
        assert detector.detector_name == "full_range"
    assert len(faces) == 1
    assert faces[0].box[1] < faces[0].keypoints[MOUTH_CENTRE, 1]


def test_models_are_the_committed_files():
    assert model_path("short_range").name == "face_detection_short_range.tflite"
    assert model_path("full_range").stat().st_size > 100_000


def test_bad_detector_settings_are_config_errors():
    with pytest.raises(ConfigError, match="detector must be one of"):
        FaceDetector("long_range")
    with pytest.raises(ConfigError, match="min_face_score"):
        FaceDetector("short_range", min_score=1.5)


def test_closed_detector_refuses_frames():
    detector = FaceDetector()
    detector.close()
    detector.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        detector.detect(noise_frames(1, 32, 32)[0])


# ------------------------------------------------------------------ per-thread shared detectors


def test_shared_detector_is_cached_per_settings_and_per_thread():
    settings = {"detector": "short_range", "min_face_score": 0.5}
    first = shared_detector(settings)
    assert isinstance(first, FaceDetector)
    assert shared_detector(dict(settings)) is first
    assert shared_detector({"detector": "short_range"}) is first  # the default score
    assert shared_detector({}).detector_name == "auto"  # the default detector
    other_score = shared_detector({"detector": "short_range", "min_face_score": 0.7})
    other_model = shared_detector({"detector": "full_range", "min_face_score": 0.5})
    assert other_score is not first and other_model is not first
    assert other_score.min_score == 0.7 and other_model.detector_name == "full_range"
    assert shared_detector({"detector": "short_range", "min_face_score": 0.7}) is other_score

    built: list[FaceDetector] = []
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            detector = shared_detector(settings)
            assert shared_detector(settings) is detector
            assert detector.detect(np.zeros((64, 64, 3), np.uint8)) == []
            built.append(detector)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and not errors, errors
    assert len(built) == 1 and built[0] is not first
    built[0].close()
    assert shared_detector(settings) is first  # this thread's cache is untouched


def test_closing_shared_detectors_makes_the_next_call_build_a_fresh_one():
    settings = {"detector": "short_range", "min_face_score": 0.5}
    old = shared_detector(settings)
    close_shared_detectors()
    with pytest.raises(RuntimeError, match="after close"):
        old.detect(np.zeros((32, 32, 3), np.uint8))
    fresh = shared_detector(settings)
    assert fresh is not old
    assert fresh.detect(np.zeros((32, 32, 3), np.uint8)) == []
    assert shared_detector(settings) is fresh
    close_shared_detectors()
    close_shared_detectors()  # idempotent


# ------------------------------------------------------------------ auto: short, full, tiles


def _small_face_canvas(scale: float, width: int, height: int) -> np.ndarray:
    """A GRID frame shrunk by ``scale`` (its ~130-px face to ~65 px at 0.5) pasted into a
    large grey frame: a small face in a large frame, as in a 1080p slide or crowd shot."""
    import cv2

    frame = grid_frames("s1/bbaf2n.mpg")[0]
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 90, np.uint8)
    y, x = height // 3, width // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def test_tiles_cover_the_frame_with_overlap():
    from lipflow.tasks.faces.detection import MIN_TILED_SIDE, tiles

    assert tiles(640, MIN_TILED_SIDE - 2) == []  # too small to gain from tiles
    squares = tiles(1920, 1080)
    assert {side for _, _, side in squares} == {540}
    covered = np.zeros((1080, 1920), bool)
    for x, y, side in squares:
        assert 0 <= x and x + side <= 1920 and 0 <= y and y + side <= 1080
        covered[y:y + side, x:x + side] = True
    assert covered.all()
    xs = sorted({x for x, _, _ in squares})
    assert all(b - a <= 540 * 0.75 + 1 for a, b in zip(xs, xs[1:], strict=False))


def test_merge_faces_drops_the_same_face_seen_twice():
    from lipflow.tasks.faces.detection import merge_faces
    from tests.support.faces import make_face

    a, a_again = make_face(100, 100, 60, 0.9), make_face(104, 102, 60, 0.8)
    b = make_face(400, 100, 60)
    merged = merge_faces([[a_again, b], [a]])
    assert len(merged) == 2 and merged[0].score == 0.9
    assert {round(f.box[0]) for f in merged} == {round(a.box[0]), round(b.box[0])}


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (3840, 2160)])
def test_auto_finds_a_65px_face_in_a_large_frame_that_both_models_miss(width, height):
    canvas = _small_face_canvas(0.5, width, height)
    with (FaceDetector("short_range") as short, FaceDetector("full_range") as full,
          FaceDetector("auto") as auto):
        assert short.detect(canvas) == [] and full.detect(canvas) == []
        (face,) = auto.detect(canvas)
        assert auto.calls["tile"] > 0
    x, y, w, h = face.box
    assert 55 <= np.sqrt(w * h) <= 80
    assert width // 2 <= x + w / 2 <= width // 2 + 180
    assert height // 3 <= y + h / 2 <= height // 3 + 144


def test_auto_costs_one_short_range_call_where_a_face_is_found():
    frames = grid_frames("s1/bbaf2n.mpg")[:5]
    with FaceDetector("auto") as auto, FaceDetector("short_range") as short:
        for frame in frames:
            got, want = auto.detect(frame), short.detect(frame)
            assert len(got) == len(want) == 1
            np.testing.assert_allclose(got[0].box, want[0].box)
        assert auto.calls == {"short_range": 5, "full_range": 0, "tile": 0}
        # a frame without a face pays for the fallbacks: whole frame, then (large) tiles
        assert auto.detect(np.full((288, 360, 3), 90, np.uint8)) == []
        assert auto.calls["full_range"] == 1 and auto.calls["tile"] == 0
