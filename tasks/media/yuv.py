"""Decoded frames kept in their native 4:2:0 planes (the crops cut from them:
lipflow.tasks.faces.yuv_crops).

Video decoders hand out BT.601 limited-range Y, U and V planes; converting every frame
to RGB costs more CPU than decoding it (GRID, 360x288: 0.1 ms against 0.15 ms a frame)
and doubles the memory a clip buffer needs. The preprocessing path never needs a whole
RGB frame except where the face detector runs (a few frames a clip), so it keeps each
frame as a :class:`YuvFrame` of plane *views* into the decoder's buffer and cuts:

- mouth crops from the Y plane alone (grey), expanded to full range: luma is what an RGB
  to grey conversion computes (the chroma terms of BT.601 cancel in it);
- face crops by resizing Y and warping U, V (half resolution) to the crop size, then
  one BT.601 colour-matrix call for the whole clip.

Both (:mod:`lipflow.tasks.faces.yuv_crops`) match the RGB path (:mod:`lipflow.tasks.faces.crops`)
to within a grey
level on average (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: Limited-range luma (16-235) to full-range grey (0-255), as OpenCV's I420 -> RGB -> grey.
LUMA_TO_GREY = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)
BLACK_Y, NEUTRAL_UV = 16, 128

#: (Y, U, V, 1) -> (R, G, B) for BT.601 limited range, the matrix of OpenCV's I420 path.
BT601_LIMITED_TO_RGB = np.array(
    [
        [1.164, 0.0, 1.596, -1.164 * 16 - 1.596 * 128],
        [1.164, -0.391, -0.813, -1.164 * 16 + (0.391 + 0.813) * 128],
        [1.164, 2.018, 0.0, -1.164 * 16 - 2.018 * 128],
    ]
)


@dataclass(frozen=True)
class YuvFrame:
    """One frame as 4:2:0 planes: ``y`` (H, W), ``u`` and ``v`` (H/2, W/2), uint8.

    H and W are even. The planes may be strided views into a decoder buffer, which they
    keep alive; nothing here writes to them.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3): the shape of :meth:`rgb`, for code that only looks at sizes."""
        return self.height, self.width, 3

    def i420(self) -> np.ndarray:
        """The frame packed as one contiguous (H * 3 / 2, W) I420 buffer (a copy)."""
        h, w = self.height, self.width
        buf = np.empty((h * 3 // 2, w), dtype=np.uint8)
        flat = buf.reshape(-1)
        buf[:h] = self.y
        flat[h * w : h * w + h * w // 4] = self.u.reshape(-1)
        flat[h * w + h * w // 4 :] = self.v.reshape(-1)
        return buf

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB (BT.601, limited range), what the detector takes."""
        return cv2.cvtColor(self.i420(), cv2.COLOR_YUV2RGB_I420)

    def crop(self, x: int, y: int, width: int, height: int) -> YuvFrame:
        """The window ``(x, y, width, height)``, snapped to even pixels (views, no copy).

        4:2:0 chroma covers 2x2 luma pixels, so a window must start and end on even
        coordinates; each edge moves left or up to the nearest even pixel (at most one).
        """
        x0, y0 = x - x % 2, y - y % 2
        x1, y1 = x + width - (x + width) % 2, y + height - (y + height) % 2
        return YuvFrame(
            y=self.y[y0:y1, x0:x1],
            u=self.u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
            v=self.v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
        )


def yuv_frame(frame: Any) -> YuvFrame:
    """A decoded PyAV video frame as a :class:`YuvFrame` of views into its buffer.

    Other pixel formats (RGB, 4:4:4, 10-bit, full-range ``yuvj420p``) are converted to
    limited-range ``yuv420p`` by FFmpeg first. An odd width or height loses its last
    column or row (4:2:0 needs even sides); the origin does not move, so boxes stay put.
    """
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    height, width = frame.height - frame.height % 2, frame.width - frame.width % 2
    sizes = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
    planes = []
    for plane, (rows, cols) in zip(frame.planes, sizes, strict=True):
        stride = plane.line_size
        data = np.frombuffer(plane, dtype=np.uint8, count=rows * stride)
        planes.append(data.reshape(rows, stride)[:, :cols])
    return YuvFrame(*planes)


class RgbFrames(Sequence[np.ndarray]):
    """A read-only sequence that converts ``frames[t]`` to RGB only when indexed.

    Hand this to :func:`lipflow.tasks.faces.tracking.track_face`: the detector looks at a few
    frames of a clip, and only those are converted.
    """

    def __init__(self, frames: Sequence[YuvFrame]) -> None:
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [frame.rgb() for frame in self._frames[index]]
        return self._frames[index].rgb()
