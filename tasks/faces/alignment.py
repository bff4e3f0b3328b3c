"""Mouth crops aligned by FaceMesh landmarks, auto_avsr's recipe on lipflow's mean face.

auto_avsr (``preparation/transforms``) smooths each clip's landmarks over time, fits the
similarity transform that maps a few *stable* points (eye corners and nose tip: they do
not move when the mouth does) onto a mean face, warps every frame with it, and cuts a
fixed-size window around the warped mouth. lipflow does the same with FaceMesh points
(:mod:`lipflow.tasks.faces.landmarks`): the stable points are the four eye corners and
the nose tip, the mean face is :data:`STABLE_TEMPLATE`, and the window
(:class:`~lipflow.tasks.faces.crops.MouthWindow`: the ``square``, ``cnn3d`` and
``vcagan`` presets alike) is centred on the warped mouth centre averaged over the clip,
so within a clip the window does not move with the lips (a mouth that opens would
otherwise drag a per-frame centre down and back up).

Why not BlazeFace's keypoints (``preprocess.mouth_alignment: keypoints``): they are
detected on a few frames a clip and interpolated, and the mouth keypoint is one of the
fitted points, so lip motion and detector jitter both shake the crop
(``benchmarks/mouth_jitter.py`` measures the difference).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lipflow.tasks.faces.crops import MEAN_FACE, MouthWindow
from lipflow.tasks.faces.landmarks import (
    LEFT_EYE_CORNERS,
    LIP_CORNERS,
    NOSE_TIP,
    OUTER_LIPS,
    RIGHT_EYE_CORNERS,
)
from lipflow.tasks.media.yuv import LUMA_TO_GREY, YuvFrame

STABLE_POINTS = (*RIGHT_EYE_CORNERS, *LEFT_EYE_CORNERS, NOSE_TIP)
MOUTH_POINTS = (*LIP_CORNERS, *OUTER_LIPS)

_MEASURED = np.array(
    [
        [81.8, 99.25], [110.2, 100.75],  # right eye: outer (33), inner (133)
        [145.8, 100.75], [174.2, 99.25],  # left eye: inner (362), outer (263)
        [128.0, 146.3],  # nose tip (1)
        [128.0, 181.7],  # mouth centre (mean of 61, 291, 0, 17)
    ]
)
"""FaceMesh points on GRID s1 (50 videos, 3675 frames, every 20th video), mapped per frame
so that the eye centres (means of each eye's corners) land on :data:`MEAN_FACE`'s eyes
(96, 100) and (160, 100), averaged and made symmetric (sd <= 0.4 px for the eye corners,
2.4 for the nose, 2-4 for the lips)."""


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(T, 2, 3) least-squares similarity maps from ``src`` (T, K, 2) onto ``dst`` (K, 2).

    The closed-form Umeyama fit without reflection, for all frames at once with points as
    complex numbers (as :func:`lipflow.tasks.faces.crops.mouth_transforms`).
    """
    src = np.asarray(src, dtype=np.float64)
    if src.ndim != 3 or src.shape[1:] != dst.shape or not np.isfinite(src).all():
        raise ValueError(f"points must be finite (T, {len(dst)}, 2), got {src.shape}")
    src_mean, dst_mean = src.mean(axis=1), dst.mean(axis=0)
    zs = (src[..., 0] - src_mean[:, None, 0]) + 1j * (src[..., 1] - src_mean[:, None, 1])
    zd = (dst[:, 0] - dst_mean[0]) + 1j * (dst[:, 1] - dst_mean[1])
    spread = (np.abs(zs) ** 2).sum(axis=1)
    if (spread < 1e-9).any():
        raise ValueError("cannot fit the mean face to coincident points")
    a = (np.conj(zs) * zd).sum(axis=1) / spread
    out = np.empty((len(src), 2, 3))
    out[:, 0, 0], out[:, 0, 1] = a.real, -a.imag
    out[:, 1, 0], out[:, 1, 1] = a.imag, a.real
    out[:, :, 2] = dst_mean - np.einsum("tij,tj->ti", out[:, :, :2], src_mean)
    return out


def _template() -> np.ndarray:
    """The stable points and mouth centre of :data:`_MEASURED` in :data:`MEAN_FACE` pixels.

    The measured FaceMesh face is mapped onto BlazeFace's mean face by the similarity
    that best fits eye centres, nose and mouth: the same crop presets then cut about the
    same region on either alignment path.
    """
    m = _MEASURED
    own = np.stack([m[0:2].mean(axis=0), m[2:4].mean(axis=0), m[4], m[5]])
    fit = similarity(own[None], MEAN_FACE)[0]
    return m @ fit[:, :2].T + fit[:, 2]


_TEMPLATE = _template()
STABLE_TEMPLATE = _TEMPLATE[:5]
"""Where the stable points (:data:`STABLE_POINTS`) go, in pixels of the 256x256 mean face."""


def aligned_transforms(points: np.ndarray, window: MouthWindow) -> np.ndarray:
    """(T, 2, 3) affine maps from source pixels to mouth-crop pixels for ``window``.

    ``points`` (T, 468, 2) are the clip's (smoothed) landmarks. Each frame: similarity of
    the stable points onto :data:`STABLE_TEMPLATE`, times ``window.scale``; then one shift
    for the whole clip that puts the clip's mean warped mouth centre (lip corners and
    outer-lip midpoints) at the window centre, moved by ``window.shift_y``.
    """
    points = np.asarray(points, dtype=np.float64)
    maps = similarity(points[:, list(STABLE_POINTS)], STABLE_TEMPLATE)
    maps *= float(window.scale)
    mouth_src = points[:, list(MOUTH_POINTS)].mean(axis=1)
    mouth = np.einsum("tij,tj->ti", maps[:, :, :2], mouth_src) + maps[:, :, 2]
    centre = np.array([(window.width_px - 1) / 2.0,
                       (window.height_px - 1) / 2.0 - window.shift_y * window.scale])
    maps[:, :, 2] += centre - mouth.mean(axis=0)
    return maps


def warp_grey_yuv(frames: Sequence[YuvFrame], transforms: np.ndarray,
                  height_px: int, width_px: int) -> np.ndarray:
    """(T, height, width) uint8 grey crops: each frame's Y plane warped by its map.

    As :func:`lipflow.tasks.faces.yuv_crops.mouth_crops_yuv`: only the output window is
    computed, the edge repeats beyond the frame, luma is mapped to full-range grey.
    """
    if len(transforms) != len(frames):
        raise ValueError(f"{len(transforms)} transforms for {len(frames)} frames")
    out = np.empty((len(frames), height_px, width_px), dtype=np.uint8)
    for t, frame in enumerate(frames):
        out[t] = cv2.warpAffine(frame.y, transforms[t], (width_px, height_px),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return LUMA_TO_GREY[out]


def window_rects(transforms: np.ndarray, height_px: int, width_px: int) -> np.ndarray:
    """(T, 4, 2) corners of each crop window in source pixels (for drawing), clockwise
    from the crop's top-left, as :func:`lipflow.tasks.faces.crops.mouth_rects`."""
    corners = np.array([[-0.5, -0.5], [width_px - 0.5, -0.5],
                        [width_px - 0.5, height_px - 0.5], [-0.5, height_px - 0.5]])
    rects = np.empty((len(transforms), 4, 2))
    for t, matrix in enumerate(transforms):
        inverse = cv2.invertAffineTransform(matrix)
        rects[t] = corners @ inverse[:, :2].T + inverse[:, 2]
    return rects
