"""Face and mouth crops: shapes, padding, alignment, and a contact sheet of the GRID sample."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import uniform_filter1d

from lipflow.tasks.common.atomic import write_bytes_atomic
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.faces.crops import (
    MEAN_FACE,
    _shrink,
    contact_sheet,
    face_crops,
    mouth_crop_size,
    mouth_crops,
    mouth_rects,
    mouth_transforms,
    mouth_window,
)
from lipflow.tasks.faces.detection import LEFT_EYE, MOUTH_CENTRE, RIGHT_EYE
from lipflow.tasks.faces.tracking import track_face
from tests.support.faces import (  # noqa: F401
    ARTIFACTS,
    face_detector,
    grid_frames,
    grid_videos,
    make_face,
)


def rotate_about(points: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points - centre) @ rot.T + centre


def test_crop_sizes_for_both_presets():
    assert mouth_crop_size({"mouth_preset": "square", "mouth_height_px": 96,
                            "mouth_width_px": 96}) == (96, 96)
    assert mouth_crop_size({"mouth_preset": "square", "mouth_height_px": 88,
                            "mouth_width_px": 88}) == (88, 88)
    assert mouth_crop_size({"mouth_preset": "cnn3d", "mouth_height_px": 96}) == (60, 100)
    assert mouth_crop_size({"mouth_preset": "vcagan"}) == (112, 112)
    with pytest.raises(ConfigError, match="mouth_preset"):
        mouth_crop_size({"mouth_preset": "round"})


@pytest.mark.parametrize("size", [(96, 96), (60, 100)])
def test_mouth_crops_are_grayscale_uint8_of_the_preset_size(size):
    frames = np.full((3, 288, 360, 3), 128, np.uint8)
    kps = np.stack([make_face(120, 80, 130).keypoints] * 3)
    crops = mouth_crops(frames, kps, *size)
    assert crops.shape == (3, *size) and crops.dtype == np.uint8


def test_mouth_keypoint_lands_at_the_crop_centre_even_when_the_head_rolls():
    """A bright dot drawn on the mouth keypoint is the brightest spot at the crop's centre."""
    face = make_face(120, 60, 140)
    centre = face.keypoints[:4].mean(axis=0)
    for degrees in (0, 15, -25):
        kps = rotate_about(face.keypoints, centre, degrees)
        frame = np.full((288, 360, 3), 90, np.uint8)
        mx, my = np.round(kps[MOUTH_CENTRE]).astype(int)
        cv2.circle(frame, (int(mx), int(my)), 3, (255, 255, 255), -1)
        for h, w in ((96, 96), (60, 100)):
            crop = mouth_crops(frame[None], kps[None], h, w)[0]
            ys, xs = np.nonzero(crop > 200)
            assert abs(ys.mean() - (h - 1) / 2) < 1.5 and abs(xs.mean() - (w - 1) / 2) < 1.5
            # the roll is undone: both eyes land on one row of the mean face
            matrix = mouth_transforms(kps[None], h, w)[0]
            eyes = kps[[RIGHT_EYE, LEFT_EYE]] @ matrix[:, :2].T + matrix[:, 2]
            assert abs(eyes[0, 1] - eyes[1, 1]) < 0.5
            assert eyes[1, 0] - eyes[0, 0] == pytest.approx(
                MEAN_FACE[1, 0] - MEAN_FACE[0, 0], rel=0.05
            )


def test_mouth_crop_scale_does_not_depend_on_face_size():
    small, large = make_face(150, 100, 60), make_face(40, 20, 240)
    matrices = mouth_transforms(np.stack([small.keypoints, large.keypoints]), 96, 96)
    scales = np.linalg.norm(matrices[:, :, 0], axis=1)
    assert scales[0] == pytest.approx(4 * scales[1], rel=0.01)


def test_mouth_rects_surround_the_mouth_in_source_pixels():
    face = make_face(100, 50, 150)
    kps = rotate_about(face.keypoints, face.keypoints[MOUTH_CENTRE], 10)[None]
    rect = mouth_rects(kps, 60, 100)[0]
    assert rect.shape == (4, 2)
    assert np.allclose(rect.mean(axis=0), kps[0, MOUTH_CENTRE], atol=0.6)
    width, height = np.linalg.norm(rect[1] - rect[0]), np.linalg.norm(rect[3] - rect[0])
    assert width / height == pytest.approx(100 / 60, rel=0.01)
    assert np.degrees(np.arctan2(*(rect[1] - rect[0])[::-1])) == pytest.approx(10, abs=1)


def test_vcagan_window_is_the_136_px_lower_face_of_the_mean_face():
    """Keypoints at the mean face itself: the window's corners are VCA-GAN's crop box
    (59, 95)-(195, 231) of a 256x256 aligned face, up to its 1-px centre difference."""
    kps = np.zeros((1, 6, 2))
    kps[0, :4] = MEAN_FACE
    window = mouth_window({"mouth_preset": "vcagan"})
    rect = mouth_rects(kps, window.height_px, window.width_px, window.scale,
                       window.shift_y)[0]
    assert np.allclose(rect[0], [60, 95], atol=0.6)  # their x 59: centre 127 vs our 128
    assert np.allclose(rect[2], [196, 231], atol=0.6)
    crops = mouth_crops(np.zeros((1, 256, 256, 3), np.uint8), kps, window.height_px,
                        window.width_px, window.scale, window.shift_y)
    assert crops.shape == (1, 112, 112)


def test_face_crops_are_square_rgb_and_padded_black_at_edges():
    frames = np.full((2, 200, 300, 3), 200, np.uint8)
    boxes = np.array([[100, 50, 80, 100], [-20, -30, 100, 100]], dtype=np.float64)
    crops = face_crops(frames, boxes, size_px=96, margin=0.25)
    assert crops.shape == (2, 96, 96, 3) and crops.dtype == np.uint8
    assert (crops[0] == 200).all()  # inside the frame: no padding
    assert (crops[1, :20, :20] == 0).all()  # the part above-left of the frame is black
    assert (crops[1, -20:, -20:] == 200).all()


def test_nan_keypoints_are_refused():
    kps = np.full((1, 6, 2), np.nan)
    with pytest.raises(ValueError, match="no tracked face"):
        mouth_crops(np.zeros((1, 10, 10, 3), np.uint8), kps)


def test_contact_sheet_of_the_grid_sample_is_centred_on_the_mouth(face_detector):  # noqa: F811
    """Writes artifacts/contact_sheet_mouth.png: a row per sample clip, every 10th frame."""
    sequences, faces = [], []
    for video in grid_videos():
        frames = grid_frames(str(video.relative_to(video.parents[1])))
        track = track_face(frames, face_detector, detect_every_frames=1)
        assert track.kept, f"{video.name}: {track.reject_reason}"
        mouths = mouth_crops(frames, track.keypoints, 96, 96)
        sequences.append(mouths)
        faces.append(face_crops(frames[:1], track.boxes[:1], 96, 0.25))
        # the lips (the darkest horizontal band around the mouth) sit mid-height
        profile = mouths[:, 20:76, 30:66].astype(np.float64).mean(axis=(0, 2))
        darkest_row = 20 + int(np.argmin(uniform_filter1d(profile, 5)))
        assert abs(darkest_row - 47.5) <= 8, f"{video.name}: lips at row {darkest_row}"
    assert len(sequences) >= 6
    sheet = contact_sheet(sequences, every=10)
    assert sheet.shape == (len(sequences) * 98 - 2, 8 * 98 - 2)
    ok, png = cv2.imencode(".png", sheet)
    assert ok
    write_bytes_atomic(ARTIFACTS / "contact_sheet_mouth.png", png.tobytes())
    assert (ARTIFACTS / "contact_sheet_mouth.png").stat().st_size > 10_000
    face_sheet = contact_sheet(faces, every=1)
    assert face_sheet.shape == (len(faces) * 98 - 2, 96, 3)


def test_contact_sheet_rejects_mixed_sizes():
    with pytest.raises(ValueError, match="same crop size"):
        contact_sheet([np.zeros((3, 10, 10), np.uint8), np.zeros((3, 8, 8), np.uint8)])


def test_mouth_transforms_equal_a_per_frame_skimage_fit() -> None:
    """The vectorised closed-form fit is the least-squares similarity skimage finds."""
    from skimage.transform import SimilarityTransform

    from lipflow.tasks.faces.crops import MEAN_FACE, mouth_transforms

    rng = np.random.default_rng(7)
    base = np.array([[120, 100], [180, 102], [150, 140], [151, 175], [100, 110], [200, 112]],
                    dtype=np.float64)
    keypoints = base[None] + rng.normal(0, 3, (12, 6, 2))
    fast = mouth_transforms(keypoints, 60, 100)
    for t, points in enumerate(keypoints):
        fit = SimilarityTransform.from_estimate(points[:4], MEAN_FACE)
        matrix = np.array(fit.params[:2])
        mouth = matrix[:, :2] @ points[3] + matrix[:, 2]
        matrix[:, 2] += np.array([99 / 2, 59 / 2]) - mouth
        np.testing.assert_allclose(fast[t], matrix, atol=1e-9)


# ------------------------------------------------------------------ fast area shrink


def _area(patch: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize(
    ("side", "x0", "y0", "bound"),
    # measured mean differences: 0.15, 0.14, 0.24, 0.27
    [(178, 60, 80, 0.3), (178, 0, 0, 0.3), (250, 90, 20, 0.5), (250, 0, 0, 0.5)],
)
def test_shrink_is_close_to_inter_area_on_a_grid_face(side, x0, y0, bound):
    frame = grid_frames("s1/bbaf2n.mpg")[10]
    patch = np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side])
    fast = _shrink(patch, 96)
    assert fast.shape == (96, 96, 3) and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - _area(patch, 96)).mean() < bound


def test_shrink_is_close_to_inter_area_on_a_large_face():
    """A 700-pixel patch takes the pyramid path (two halvings) first."""
    frame = grid_frames("s1/bbaf2n.mpg")[10]
    big = cv2.resize(frame, (875, 700), interpolation=cv2.INTER_CUBIC)
    for x0 in (0, 175):
        patch = np.ascontiguousarray(big[:, x0 : x0 + 700])
        fast = _shrink(patch, 96)
        assert fast.shape == (96, 96, 3)
        # measured: 0.70 and 0.66 (the docstring quotes 0.6 for a real 700-pixel face)
        assert np.abs(fast.astype(int) - _area(patch, 96)).mean() < 1.0


def test_shrink_of_grey_and_exact_multiples():
    frame = grid_frames("s1/bbaf2n.mpg")[10]
    grey = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[50:228, 60:238])
    assert _shrink(grey, 96).shape == (96, 96)
    assert np.abs(_shrink(grey, 96).astype(int) - _area(grey, 96)).mean() < 0.3  # meas. 0.15
    twice = np.ascontiguousarray(frame[:192, :192])
    assert np.array_equal(_shrink(twice, 96), _area(twice, 96))  # one 2:1 average


def test_shrink_enlarges_a_patch_smaller_than_the_output():
    frame = grid_frames("s1/bbaf2n.mpg")[10]
    small = np.ascontiguousarray(frame[100:160, 100:160])
    out = _shrink(small, 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert np.array_equal(out, cv2.resize(small, (96, 96), interpolation=cv2.INTER_LINEAR))
    same = np.ascontiguousarray(frame[100:196, 100:196])
    assert np.array_equal(_shrink(same, 96), same)  # already the output size: unchanged


def test_pipeline_contact_sheet_is_centred_on_the_mouth(tmp_path):
    """What `prepare` stores, not a re-run of the crop functions: writes
    artifacts/contact_sheet_mouth_pipeline.png (a row per sample clip, every 10th frame)
    from the clip files preprocess_video writes with params.yaml's GRID settings."""
    from lipflow.tasks.contracts.clip_record import load_clip
    from lipflow.tasks.prepare.settings import speaker_settings
    from lipflow.tasks.prepare.video import preprocess_video
    from lipflow.tasks.settings.project import load_params

    settings, _ = speaker_settings(load_params(), "grid", "s1")
    sample = grid_videos()[0].parents[1]
    sequences = []
    for video in grid_videos():
        record = {"corpus": "grid", "speaker": video.parent.name, "utterance_id": video.stem,
                  "language": "en", "split": None,
                  "video_path": str(video.relative_to(sample)), "word_timings": None}
        rows = preprocess_video(record, sample, tmp_path, settings)
        assert [row["kept"] for row in rows] == [True], rows
        mouths = load_clip(rows[0]["clip_path"])["mouth"]
        sequences.append(mouths)
        profile = mouths[:, 20:76, 30:66].astype(np.float64).mean(axis=(0, 2))
        darkest_row = 20 + int(np.argmin(uniform_filter1d(profile, 5)))
        assert abs(darkest_row - 47.5) <= 8, f"{video.name}: lips at row {darkest_row}"
    sheet = contact_sheet(sequences, every=10)
    ok, png = cv2.imencode(".png", sheet)
    assert ok
    write_bytes_atomic(ARTIFACTS / "contact_sheet_mouth_pipeline.png", png.tobytes())
    assert (ARTIFACTS / "contact_sheet_mouth_pipeline.png").stat().st_size > 10_000
