"""Face and mouth crops from a tracked clip, and a contact sheet to eyeball them.

Face crops (Lip2Wav style): a square around the face box, grown by a margin, resized.
Mouth crops (auto_avsr / AV-HuBERT style): each frame is warped by the similarity
transform (rotation, uniform scale, shift) that best maps four keypoints (both eyes,
nose tip, mouth centre) onto a fixed mean face, and a window centred on the warped
mouth centre is cut out. The warp removes head roll and distance to the camera, so the
lips keep the same size and orientation across clips and speakers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.faces.detection import MOUTH_CENTRE
from lipflow.tasks.settings.schema import Preprocess
from lipflow.tasks.settings.validation import typed_section

MEAN_FACE = np.array(
    [
        [96.0, 100.0],  # right eye (image left)
        [160.0, 100.0],  # left eye
        [128.0, 136.0],  # nose tip
        [128.0, 169.0],  # mouth centre
    ]
)
"""Reference positions (pixels of a 256x256 mean face) of BlazeFace keypoints 0-3.

Measured on the bundled GRID sample (450 frames, short-range model) in units of the
eye distance, from the eye midpoint: nose tip (0.01, 0.57), mouth centre (0.00, 1.08),
sd <= 0.1; made symmetric and scaled to a 64-pixel eye distance. At that scale a 96x96
window centred on the mouth spans from under the nose to the chin, as in auto_avsr's
LRS3 crops; the 60x100 preset cuts a tighter window at the same scale."""



@dataclass(frozen=True)
class MouthWindow:
    """Where a mouth crop is cut and how large it is stored.

    ``height_px`` x ``width_px`` is the stored crop; ``scale`` is crop pixels per pixel of
    the 256x256 mean face (1: the window is as large as the crop), and ``shift_y`` moves
    the window centre from the mouth centre, in mean-face pixels (negative: up).
    """

    height_px: int
    width_px: int
    scale: float = 1.0
    shift_y: float = 0.0


VCAGAN_WINDOW = MouthWindow(112, 112, scale=112 / 136, shift_y=-6.0)
"""VCA-GAN's lower-face crop: its recipe cuts the (59, 95)-(195, 231) window (136 px,
centre (127, 163)) of a 256x256 face aligned to its 98-landmark mean face, then resizes it
to 112x112 grey. lipflow places the same 136-px window on its own 4-keypoint mean face
(:data:`MEAN_FACE`: eyes 64 px apart at y 100, mouth centre at y 169), centred 6 px above
the mouth (y 163) and stored at 112x112: the same lower-face region up to the difference
between the two mean faces (theirs is not published; ours is measured on GRID)."""

MOUTH_PRESETS = {"cnn3d": MouthWindow(60, 100), "vcagan": VCAGAN_WINDOW}
"""Fixed mouth crop windows; ``square`` uses mouth_height/width_px at scale 1."""


def mouth_window(preprocess: Mapping[str, Any]) -> MouthWindow:
    """The mouth crop window of the ``preprocess:`` section of params.yaml."""
    p = typed_section(Preprocess, preprocess, "preprocess")
    if p.mouth_preset in MOUTH_PRESETS:
        return MOUTH_PRESETS[p.mouth_preset]
    return MouthWindow(p.mouth_height_px, p.mouth_width_px)


def mouth_crop_size(preprocess: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of mouth crops for the ``preprocess:`` section of params.yaml."""
    window = mouth_window(preprocess)
    return window.height_px, window.width_px


def _check_keypoints(keypoints: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.ndim != 3 or kps.shape[1] < 4 or kps.shape[2] != 2:
        raise ValueError(f"keypoints must be (T, 6, 2), got {kps.shape}")
    if num_frames is not None and len(kps) != num_frames:
        raise ValueError(f"{len(kps)} keypoint rows for {num_frames} frames")
    if not np.isfinite(kps[:, :4]).all():
        raise ValueError("keypoints hold NaN: the clip has no tracked face to crop")
    return kps


def mouth_transforms(keypoints: np.ndarray, height_px: int, width_px: int,
                     scale: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """(T, 2, 3) affine maps from source pixels to each frame's mouth-crop pixels.

    Similarity fit (least squares over the four points) to :data:`MEAN_FACE`, then a
    shift that puts the frame's own warped mouth centre at the crop centre, as
    auto_avsr's ``cut_patch`` does. The fit is the closed-form Umeyama solution without
    reflection, done for all frames at once with points as complex numbers: the same
    result as fitting ``skimage``'s ``SimilarityTransform`` per frame (tested), about
    250 times faster, which matters at 75-90 frames a clip. ``scale`` and ``shift_y``
    are those of :class:`MouthWindow`.
    """
    kps = _check_keypoints(keypoints)
    src = kps[:, :4]
    src_mean = src.mean(axis=1)
    dst_mean = MEAN_FACE.mean(axis=0)
    zs = (src[..., 0] - src_mean[:, None, 0]) + 1j * (src[..., 1] - src_mean[:, None, 1])
    zd = (MEAN_FACE[:, 0] - dst_mean[0]) + 1j * (MEAN_FACE[:, 1] - dst_mean[1])
    spread = (np.abs(zs) ** 2).sum(axis=1)
    degenerate = np.flatnonzero(spread < 1e-9)
    if degenerate.size:
        raise ValueError(f"cannot fit the mean face to the keypoints of frame {degenerate[0]}")
    a = (np.conj(zs) * zd).sum(axis=1) / spread  # scale * exp(i * rotation)
    out = np.empty((len(kps), 2, 3))
    out[:, 0, 0], out[:, 0, 1] = a.real, -a.imag
    out[:, 1, 0], out[:, 1, 1] = a.imag, a.real
    out[:, :, 2] = dst_mean - np.einsum("tij,tj->ti", out[:, :, :2], src_mean)
    out *= float(scale)
    centre = np.array([(width_px - 1) / 2.0, (height_px - 1) / 2.0 - shift_y * scale])
    mouth = np.einsum("tij,tj->ti", out[:, :, :2], kps[:, MOUTH_CENTRE]) + out[:, :, 2]
    out[:, :, 2] += centre - mouth
    return out


def mouth_crops(
    frames: Sequence[np.ndarray] | np.ndarray,
    keypoints: np.ndarray,
    height_px: int = 96,
    width_px: int = 96,
    scale: float = 1.0,
    shift_y: float = 0.0,
) -> np.ndarray:
    """(T, height, width) uint8 grayscale mouth crops, aligned to the mean face.

    Only the output window is warped (not the whole frame), so the cost per frame is
    that of the small crop. Parts of the window outside the frame repeat the edge.
    """
    transforms = mouth_transforms(_check_keypoints(keypoints, len(frames)), height_px, width_px,
                                  scale, shift_y)
    out = np.empty((len(frames), height_px, width_px), dtype=np.uint8)
    for t, frame in enumerate(frames):
        patch = cv2.warpAffine(
            np.ascontiguousarray(frame), transforms[t], (width_px, height_px),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )
        out[t] = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    return out


def mouth_rects(keypoints: np.ndarray, height_px: int = 96, width_px: int = 96,
                scale: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """(T, 4, 2) corners of each mouth crop's window in source pixels, for drawing.

    The window is a rotated rectangle in the source (the crop undoes head roll); corners
    go clockwise from the crop's top-left.
    """
    transforms = mouth_transforms(keypoints, height_px, width_px, scale, shift_y)
    corners = np.array(
        [[-0.5, -0.5], [width_px - 0.5, -0.5],
         [width_px - 0.5, height_px - 0.5], [-0.5, height_px - 0.5]]
    )
    rects = np.empty((len(transforms), 4, 2))
    for t, matrix in enumerate(transforms):
        inverse = cv2.invertAffineTransform(matrix)
        rects[t] = corners @ inverse[:, :2].T + inverse[:, 2]
    return rects


def face_squares(boxes: np.ndarray, margin: float) -> np.ndarray:
    """(T, 3) integer ``x, y, side`` of the square face window around each box.

    Side = the box's longer side grown by ``margin`` of it on each side, centred on it.
    All three are even (rounded to the nearest even number, moving the window by at
    most a pixel): the window then covers whole 2x2 cells of a 4:2:0 frame's chroma,
    so :func:`lipflow.tasks.faces.yuv_crops.face_crops_yuv` can resize the chroma window exactly as
    the luma one, and both crop paths cut the same window.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
        raise ValueError(f"boxes must be finite (T, 4) x, y, w, h, got {boxes.shape}")
    if margin < 0:
        raise ConfigError(f"preprocess.face_margin must be >= 0, not {margin}")
    side = np.maximum(boxes[:, 2], boxes[:, 3]) * (1.0 + 2.0 * margin)
    cx = boxes[:, 0] + boxes[:, 2] / 2.0
    cy = boxes[:, 1] + boxes[:, 3] / 2.0
    side_i = 2 * np.maximum(1, np.round(side / 2.0)).astype(np.int64)
    x0 = 2 * np.round((cx - side_i / 2.0) / 2.0).astype(np.int64)
    y0 = 2 * np.round((cy - side_i / 2.0) / 2.0).astype(np.int64)
    return np.stack([x0, y0, side_i], axis=1)


def _shrink(patch: np.ndarray, size_px: int) -> np.ndarray:
    """Resize a square ``patch`` to ``size_px`` square with area-like anti-aliasing, fast.

    OpenCV's INTER_AREA is slow for non-integer ratios (it builds weight tables on every
    call: 0.12 ms for a 178-pixel GRID face, more than the rest of the crop). Instead:
    halve with a Gaussian pyramid while the patch is over four times the output, resize
    bilinearly to exactly twice the output, and average 2:1 (INTER_AREA's fast integer
    path). On the GRID sample that is 0.14 grey levels (mean) from INTER_AREA at under
    half its cost; for a 700-pixel face 0.6 levels at a third. A patch no larger than
    the output is just resized bilinearly.
    """
    if patch.shape[0] <= size_px:
        return cv2.resize(patch, (size_px, size_px), interpolation=cv2.INTER_LINEAR)
    while patch.shape[0] > 4 * size_px:
        patch = cv2.pyrDown(patch)
    if patch.shape[0] != 2 * size_px:
        patch = cv2.resize(patch, (2 * size_px, 2 * size_px), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(patch, (size_px, size_px), interpolation=cv2.INTER_AREA)


def face_crops(
    frames: Sequence[np.ndarray] | np.ndarray,
    boxes: np.ndarray,
    size_px: int = 96,
    margin: float = 0.25,
) -> np.ndarray:
    """(T, size, size, 3) uint8 RGB face crops (square box with margin, INTER_AREA).

    Where the square runs past the frame edge it is padded with black rather than
    shifted, so the face stays centred in every crop.
    """
    squares = face_squares(boxes, margin)
    if len(squares) != len(frames):
        raise ValueError(f"{len(squares)} boxes for {len(frames)} frames")
    out = np.empty((len(frames), size_px, size_px, 3), dtype=np.uint8)
    for t, frame in enumerate(frames):
        x0, y0, side = (int(v) for v in squares[t])
        height, width = frame.shape[:2]
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + side, width), min(y0 + side, height)
        if cx1 <= cx0 or cy1 <= cy0:
            out[t] = 0
            continue
        patch = frame[cy0:cy1, cx0:cx1]
        if (cx0, cy0, cx1, cy1) != (x0, y0, x0 + side, y0 + side):
            patch = cv2.copyMakeBorder(
                np.ascontiguousarray(patch), cy0 - y0, y0 + side - cy1, cx0 - x0,
                x0 + side - cx1, cv2.BORDER_CONSTANT, value=(0, 0, 0),
            )
        out[t] = _shrink(patch, size_px)
    return out


def contact_sheet(
    sequences: Sequence[np.ndarray], every: int = 10, gap_px: int = 2
) -> np.ndarray:
    """One image of crop sequences: a row per sequence, a column per ``every``-th frame.

    Accepts (T, H, W) grayscale or (T, H, W, 3) RGB sequences of one crop size; rows
    shorter than the longest are left black. For looking at crops, not for training.
    """
    if not sequences:
        raise ValueError("contact_sheet needs at least one sequence")
    picked = [np.asarray(seq)[::every] for seq in sequences]
    cell = picked[0].shape[1:]
    if any(p.shape[1:] != cell for p in picked):
        raise ValueError("all sequences must have the same crop size")
    cols = max(len(p) for p in picked)
    h, w = cell[0], cell[1]
    sheet = np.zeros(
        (len(picked) * (h + gap_px) - gap_px, cols * (w + gap_px) - gap_px, *cell[2:]),
        dtype=np.uint8,
    )
    for r, row in enumerate(picked):
        for c, crop in enumerate(row):
            y, x = r * (h + gap_px), c * (w + gap_px)
            sheet[y : y + h, x : x + w] = crop
    return sheet
