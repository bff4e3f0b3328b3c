"""Face and mouth crops cut straight from 4:2:0 frames (:class:`lipflow.tasks.media.yuv.YuvFrame`).

The same windows and warps as :mod:`lipflow.tasks.faces.crops` (which works on RGB frames, for any
image source); here no frame is ever converted whole. See :mod:`lipflow.tasks.media.yuv` for
why, and the tests for how close the two paths are.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lipflow.tasks.faces.crops import _shrink, face_squares, mouth_transforms
from lipflow.tasks.media.yuv import (
    BLACK_Y,
    BT601_LIMITED_TO_RGB,
    LUMA_TO_GREY,
    NEUTRAL_UV,
    YuvFrame,
)


def _window(plane: np.ndarray, x0: int, y0: int, side: int, fill: int) -> np.ndarray:
    """``plane[y0:y0+side, x0:x0+side]``, padded with ``fill`` where it runs off the edge."""
    height, width = plane.shape
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + side, width), min(y0 + side, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.full((side, side), fill, dtype=np.uint8)
    patch = plane[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) == (x0, y0, x0 + side, y0 + side):
        return patch
    return cv2.copyMakeBorder(
        np.ascontiguousarray(patch), cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1,
        cv2.BORDER_CONSTANT, value=fill,
    )


def face_crops_yuv(
    frames: Sequence[YuvFrame], boxes: np.ndarray, size_px: int = 96, margin: float = 0.25
) -> np.ndarray:
    """(T, size, size, 3) uint8 RGB face crops, as :func:`lipflow.tasks.faces.crops.face_crops`
    cuts them.

    Same square windows (``face_squares``, even-aligned), black beyond the frame edge.
    Luma is shrunk like the RGB path; chroma, at half resolution in the source, is
    resized bilinearly from the matching half-size window straight to the output size;
    then one BT.601 matrix turns all T crops into RGB at once.
    """
    squares = face_squares(boxes, margin)
    if len(squares) != len(frames):
        raise ValueError(f"{len(squares)} boxes for {len(frames)} frames")
    count = len(frames)
    planes = np.empty((3, count, size_px, size_px), dtype=np.uint8)
    for t, frame in enumerate(frames):
        x0, y0, side = (int(v) for v in squares[t])
        planes[0, t] = _shrink(_window(frame.y, x0, y0, side, BLACK_Y), size_px)
        # face_squares are even, so the chroma window is exactly half the luma one and
        # resizing it maps each output pixel to the same source point as the luma.
        for channel, plane in ((1, frame.u), (2, frame.v)):
            cv2.resize(_window(plane, x0 // 2, y0 // 2, side // 2, NEUTRAL_UV),
                       (size_px, size_px), dst=planes[channel, t],
                       interpolation=cv2.INTER_LINEAR)
    tall = cv2.merge([plane.reshape(count * size_px, size_px) for plane in planes])
    return cv2.transform(tall, BT601_LIMITED_TO_RGB).reshape(count, size_px, size_px, 3)


def mouth_crops_yuv(
    frames: Sequence[YuvFrame], keypoints: np.ndarray, height_px: int = 96, width_px: int = 96,
    scale: float = 1.0, shift_y: float = 0.0,
) -> np.ndarray:
    """(T, height, width) uint8 grey mouth crops, as :func:`lipflow.tasks.faces.crops.mouth_crops`
    cuts them.

    The same similarity warp, applied to the Y plane, then mapped to full range.
    """
    transforms = mouth_transforms(np.asarray(keypoints, dtype=np.float64), height_px, width_px,
                                  scale, shift_y)
    if len(transforms) != len(frames):
        raise ValueError(f"{len(transforms)} keypoint rows for {len(frames)} frames")
    out = np.empty((len(frames), height_px, width_px), dtype=np.uint8)
    for t, frame in enumerate(frames):
        out[t] = cv2.warpAffine(
            frame.y, transforms[t], (width_px, height_px),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )
    return LUMA_TO_GREY[out]
