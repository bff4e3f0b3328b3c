"""4:2:0 frames (lipflow.tasks.media.yuv) and the crops cut from them
(lipflow.tasks.faces.yuv_crops).

The YUV path must give what the RGB path (lipflow.tasks.media.video.frame_rgb +
lipflow.tasks.faces.crops) gives, on
real GRID frames: exactly for whole frames, within about a grey level for crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lipflow.tasks.faces.crops import face_crops, face_squares, mouth_crops
from lipflow.tasks.faces.tracking import FaceTrack, track_face
from lipflow.tasks.faces.yuv_crops import face_crops_yuv, mouth_crops_yuv
from lipflow.tasks.media.video import frame_rgb
from lipflow.tasks.media.yuv import LUMA_TO_GREY, RgbFrames, YuvFrame, yuv_frame
from tests.support.faces import SAMPLE_GRID, face_detector  # noqa: F401

GRID_CLIP = SAMPLE_GRID / "s1" / "bbaf2n.mpg"


def _decode(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


@pytest.fixture(scope="module")
def av_frames() -> list[av.VideoFrame]:
    """The 75 decoded frames of s1/bbaf2n.mpg (360x288 yuv420p), as PyAV hands them out."""
    return _decode(GRID_CLIP)


@pytest.fixture(scope="module")
def yuv(av_frames: list[av.VideoFrame]) -> list[YuvFrame]:
    return [yuv_frame(frame) for frame in av_frames]


@pytest.fixture(scope="module")
def rgb(av_frames: list[av.VideoFrame]) -> list[np.ndarray]:
    return [frame_rgb(frame) for frame in av_frames]


@pytest.fixture(scope="module")
def track(rgb: list[np.ndarray], face_detector) -> FaceTrack:  # noqa: F811
    """The face through the clip, detected on every frame."""
    result = track_face(rgb, face_detector, detect_every_frames=1)
    assert result.kept, result.reject_reason
    return result


def gradient_rgb(height: int, width: int) -> np.ndarray:
    """A smooth, colourful image: red across, green down, blue along the diagonal."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [xx * 255 // (width - 1), yy * 255 // (height - 1),
         (xx + yy) * 255 // (width + height - 2)], axis=-1,
    ).astype(np.uint8)


def abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int32) - b.astype(np.int32))


# ------------------------------------------------------------------ whole frames


def test_grid_frames_are_plane_views_whose_rgb_equals_frame_rgb(
    av_frames: list[av.VideoFrame], yuv: list[YuvFrame], rgb: list[np.ndarray]
) -> None:
    assert av_frames[0].format.name == "yuv420p"
    for frame, expected in zip(yuv, rgb, strict=True):
        assert frame.y.shape == (288, 360) and frame.y.dtype == np.uint8
        assert frame.u.shape == frame.v.shape == (144, 180)
        assert (frame.height, frame.width, frame.shape) == (288, 360, (288, 360, 3))
        assert np.array_equal(frame.rgb(), expected)
    # views into the decoder's row-padded buffers (360 px rows in 384-byte lines), no copy
    first = yuv[0]
    assert not first.y.flags["C_CONTIGUOUS"]
    assert np.shares_memory(first.y, np.frombuffer(av_frames[0].planes[0], np.uint8))
    assert np.array_equal(first.y, av_frames[0].to_ndarray()[:288])


def test_i420_packs_the_planes_in_order(yuv: list[YuvFrame]) -> None:
    frame = yuv[3]
    packed = frame.i420()
    assert packed.shape == (432, 360) and packed.flags["C_CONTIGUOUS"]
    flat = packed.reshape(-1)
    n = 288 * 360
    assert np.array_equal(packed[:288], frame.y)
    assert np.array_equal(flat[n : n + n // 4], frame.u.reshape(-1))
    assert np.array_equal(flat[n + n // 4 :], frame.v.reshape(-1))


def test_rgb24_frame_is_converted_by_ffmpeg_and_comes_back_close() -> None:
    image = gradient_rgb(120, 160)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    converted = yuv_frame(frame)
    assert converted.y.shape == (120, 160) and converted.u.shape == (60, 80)
    back = converted.rgb()
    assert back.shape == image.shape and back.dtype == np.uint8
    diff = abs_diff(back, image)
    # measured: mean 0.64, max 3 (chroma subsampling and limited-range rounding)
    assert diff.mean() < 1.5
    assert diff.max() <= 6


def test_full_range_yuvj420p_is_converted_to_limited_range() -> None:
    """MJPEG decodes to full-range yuvj420p; the YuvFrame must hold limited-range planes."""
    grey = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None], 48, axis=0)
    image = np.repeat(grey[..., None], 3, axis=-1)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    assert frame.format.name == "yuvj420p"
    converted = yuv_frame(frame)
    assert converted.y.min() >= 15 and converted.y.max() <= 236  # 16-235, not 0-255
    assert abs_diff(converted.rgb(), image).max() <= 3


def test_odd_rgb24_frame_loses_last_row_and_column_but_keeps_its_origin() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (75, 101), dtype=np.uint8)  # neutral chroma: luma is exact
    image = np.repeat(grey[..., None], 3, axis=-1)
    converted = yuv_frame(av.VideoFrame.from_ndarray(image, format="rgb24"))
    assert converted.shape == (74, 100, 3)
    assert converted.u.shape == converted.v.shape == (37, 50)
    back = converted.rgb()
    # measured: mean 0.14, max 1 against the same pixels; 87 against a one-pixel shift
    assert abs_diff(back, image[:74, :100]).max() <= 2
    assert abs_diff(back[:, :-1], image[:74, 1:100]).mean() > 20
    assert abs_diff(back[:-1], image[1:74, :100]).mean() > 20


def test_odd_yuv420p_frame_is_cut_to_even_sides_without_conversion() -> None:
    frame = av.VideoFrame(101, 75, "yuv420p")
    rng = np.random.default_rng(1)
    written = []
    for plane in frame.planes:
        data = rng.integers(16, 236, (plane.height, plane.line_size), dtype=np.uint8)
        plane.update(data.tobytes())
        written.append(data[:, : plane.width])
    assert [(p.width, p.height) for p in frame.planes] == [(101, 75), (51, 38), (51, 38)]
    converted = yuv_frame(frame)
    assert np.array_equal(converted.y, written[0][:74, :100])
    assert np.array_equal(converted.u, written[1][:37, :50])
    assert np.array_equal(converted.v, written[2][:37, :50])
    assert converted.rgb().shape == (74, 100, 3)


# ------------------------------------------------------------------ crop and RgbFrames


def test_even_crop_is_an_exact_view(yuv: list[YuvFrame]) -> None:
    frame = yuv[0]
    window = frame.crop(40, 20, 100, 60)
    assert window.y.shape == (60, 100) and window.u.shape == window.v.shape == (30, 50)
    assert np.shares_memory(window.y, frame.y) and np.shares_memory(window.u, frame.u)
    assert np.array_equal(window.y, frame.y[20:80, 40:140])
    assert np.array_equal(window.u, frame.u[10:40, 20:70])
    assert np.array_equal(window.v, frame.v[10:40, 20:70])
    assert np.array_equal(window.rgb(), frame.rgb()[20:80, 40:140])


@pytest.mark.parametrize(
    ("box", "snapped"),
    [
        ((41, 21, 100, 60), (40, 20, 100, 60)),  # odd origin moves back a pixel
        ((40, 20, 101, 61), (40, 20, 100, 60)),  # odd size loses its last pixel
        ((7, 3, 50, 30), (6, 2, 50, 30)),
        ((3, 5, 11, 9), (2, 4, 12, 10)),  # odd origin and size: each edge moves <= 1 px
    ],
)
def test_crop_snaps_to_even_pixels_with_matching_chroma(
    yuv: list[YuvFrame], box: tuple[int, int, int, int], snapped: tuple[int, int, int, int]
) -> None:
    frame = yuv[0]
    window = frame.crop(*box)
    x, y, w, h = snapped
    assert window.shape == (h, w, 3)
    assert window.u.shape == window.v.shape == (h // 2, w // 2)
    assert np.array_equal(window.y, frame.y[y : y + h, x : x + w])
    assert np.array_equal(window.u, frame.u[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2])
    assert np.array_equal(window.v, frame.v[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2])
    # a window of whole 2x2 chroma cells converts as that part of the full frame does
    assert np.array_equal(window.rgb(), frame.rgb()[y : y + h, x : x + w])


class _CountingFrames(Sequence[YuvFrame]):
    """The frames, counting how many were looked up (each lookup is one conversion)."""

    def __init__(self, frames: Sequence[YuvFrame]) -> None:
        self.frames, self.lookups = list(frames), 0

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index):  # type: ignore[override]
        looked_up = self.frames[index]
        self.lookups += len(looked_up) if isinstance(index, slice) else 1
        return looked_up


def test_rgb_frames_convert_only_what_is_indexed(
    yuv: list[YuvFrame], rgb: list[np.ndarray]
) -> None:
    counting = _CountingFrames(yuv[:10])
    frames = RgbFrames(counting)
    assert len(frames) == 10 and counting.lookups == 0  # nothing converted up front
    assert np.array_equal(frames[3], rgb[3]) and counting.lookups == 1
    assert np.array_equal(frames[-1], rgb[9]) and counting.lookups == 2
    part = frames[2:8:3]
    assert isinstance(part, list) and len(part) == 2 and counting.lookups == 4
    assert np.array_equal(part[0], rgb[2]) and np.array_equal(part[1], rgb[5])
    assert frames[3].shape == (288, 360, 3) and frames[3].dtype == np.uint8
    with pytest.raises(IndexError):
        frames[10]


def test_tracking_through_rgb_frames_converts_only_detected_frames(
    yuv: list[YuvFrame], rgb: list[np.ndarray], face_detector  # noqa: F811
) -> None:
    counting = _CountingFrames(yuv)
    lazy = track_face(RgbFrames(counting), face_detector, detect_every_frames=25)
    eager = track_face(rgb, face_detector, detect_every_frames=25)
    assert lazy.kept and counting.lookups == int(lazy.attempted.sum()) == 4  # 0, 25, 50, 74
    assert np.array_equal(lazy.boxes, eager.boxes)
    assert np.array_equal(lazy.keypoints, eager.keypoints)


# ------------------------------------------------------------------ crops against the RGB path


def test_face_crops_match_the_rgb_path(
    yuv: list[YuvFrame], rgb: list[np.ndarray], track: FaceTrack
) -> None:
    fast = face_crops_yuv(yuv, track.boxes, 96, 0.25)
    reference = face_crops(rgb, track.boxes, 96, 0.25)
    assert fast.shape == reference.shape == (75, 96, 96, 3) and fast.dtype == np.uint8
    diff = abs_diff(fast, reference)
    # measured on all 75 frames: mean 0.41, 99th percentile 2, max 7 (at colour edges);
    # half a chroma pixel of misplacement would give mean 1.8, p99 18
    assert diff.mean() < 0.7
    assert np.percentile(diff, 99) <= 3


@pytest.mark.parametrize(
    "box",
    [[-40, -30, 110, 110], [300, 230, 110, 110], [-300, -300, 100, 100]],
    ids=["top-left", "bottom-right", "outside"],
)
def test_face_crops_off_the_frame_are_black_as_in_the_rgb_path(
    yuv: list[YuvFrame], rgb: list[np.ndarray], box: list[int]
) -> None:
    boxes = np.array([box] * 3, dtype=np.float64)
    fast = face_crops_yuv(yuv[:3], boxes, 96, 0.25)
    reference = face_crops(rgb[:3], boxes, 96, 0.25)
    # output pixels whose source area lies wholly outside the 360x288 frame, 4 px clear
    # of its edge (the bilinear steps blur across at most a chroma pixel, 2 luma px)
    x0, y0, side = face_squares(boxes[:1], 0.25)[0]
    step = side / 96  # source pixels per output pixel
    edges = np.arange(97) * step  # output pixel j spans [edges[j], edges[j + 1]) from x0/y0
    out_x = (x0 + edges[1:] <= -4) | (x0 + edges[:-1] >= 360 + 4)
    out_y = (y0 + edges[1:] <= -4) | (y0 + edges[:-1] >= 288 + 4)
    outside = out_y[:, None] | out_x[None, :]
    assert outside.sum() > 1000
    assert fast[:, outside].max() <= 1 and reference[:, outside].max() == 0
    inside = ~outside
    if inside.any():
        assert fast[:, inside].mean() > 50  # the picture itself is there
    # measured: mean 0.14 / 0.08 / 0 for the three boxes
    assert abs_diff(fast, reference).mean() < 0.5


@pytest.mark.parametrize("size", [(96, 96), (60, 100)])
def test_mouth_crops_match_the_rgb_path(
    yuv: list[YuvFrame], rgb: list[np.ndarray], track: FaceTrack, size: tuple[int, int]
) -> None:
    fast = mouth_crops_yuv(yuv, track.keypoints, *size)
    reference = mouth_crops(rgb, track.keypoints, *size)
    assert fast.shape == reference.shape == (75, *size) and fast.dtype == np.uint8
    diff = abs_diff(fast, reference)
    # measured on all 75 frames: mean 0.31 / 0.32, 99th percentile 1, max 3 / 2; other
    # sample clips reach a max of 6 where saturated colours clip in the RGB path
    assert diff.mean() < 0.6
    assert np.percentile(diff, 99) <= 1
    assert diff.max() <= 4


def test_crops_refuse_mismatched_lengths(yuv: list[YuvFrame], track: FaceTrack) -> None:
    with pytest.raises(ValueError, match="4 boxes for 3 frames"):
        face_crops_yuv(yuv[:3], track.boxes[:4])
    with pytest.raises(ValueError, match="4 keypoint rows for 3 frames"):
        mouth_crops_yuv(yuv[:3], track.keypoints[:4])


# ------------------------------------------------------------------ luma to grey


def test_luma_to_grey_expands_limited_range_and_clamps() -> None:
    assert LUMA_TO_GREY.dtype == np.uint8 and LUMA_TO_GREY.shape == (256,)
    assert LUMA_TO_GREY[16] == 0 and LUMA_TO_GREY[235] == 255
    assert (LUMA_TO_GREY[:17] == 0).all() and (LUMA_TO_GREY[235:] == 255).all()
    assert LUMA_TO_GREY[126] == 128  # (126 - 16) * 255 / 219 = 128.08
    assert (np.diff(LUMA_TO_GREY[16:236].astype(int)) >= 1).all()  # strictly increasing


def test_luma_to_grey_is_opencv_i420_to_rgb_to_grey() -> None:
    """On grey pixels (neutral chroma) the table is what the RGB path's grey would be."""
    luma = np.arange(256, dtype=np.uint8).reshape(16, 16)
    neutral = np.full((8, 8), 128, np.uint8)
    grey = cv2.cvtColor(YuvFrame(luma, neutral, neutral).rgb(), cv2.COLOR_RGB2GRAY)
    # measured: 11 of 256 luma values differ by 1 (rounding), none by more
    assert abs_diff(grey, LUMA_TO_GREY[luma]).max() <= 1
