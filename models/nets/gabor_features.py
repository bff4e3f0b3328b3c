"""The Gabor lip2speech inputs, as the original repository computed them.

Source: zhongpingDong12/lip2Speech, ``codes/Gabor_extraction.py`` (pictures, features),
``codes/modelInput_GaborFea2Speech.py`` and ``codes/modelInput_GaborPic2Speech.py``
(time base, deltas, slices).

Per frame (``Gabor_extraction.py``):

1. the grey mouth crop scaled to [0, 1] is filtered with one Gabor kernel
   (``cv2.getGaborKernel((12, 12), 5, pi/2, 10, 0.5, 0)``: 13x13 taps) and squared;
2. that float energy was written with ``cv2.imwrite`` to a JPEG, which converts it to
   8 bits *without scaling* (``convertTo(CV_8U)``: rounded, saturated to 0..255) and
   compresses it (OpenCV's default quality 95); the picture read back (grey) is the
   **Gabor picture**, the GaborPic2Speech input and what the features are measured on;
3. Yen's threshold of that 8-bit picture, mask ``picture >= threshold``, connected
   regions (8-connectivity, ``skimage.measure.label``);
4. **region rule**: walking the regions in label order, a region replaces the current
   choice when *both* its horizontal and its vertical centroid distance to the mouth
   centre are smaller than the current choice's (start: 1000 px each). This is not
   "the nearest region": a region nearer in Euclidean distance but farther on one axis
   does not win;
5. the chosen region's seven numbers: bounding-box width and height, area, centroid x
   and y, **mean intensity of the Gabor picture** inside it, and orientation in the
   original's skimage 0.14 ``coordinates='xy'`` convention: the major axis' angle from
   the x axis, ``0.5 * atan2(2 cov(x, y), var(x) - var(y))`` in image coordinates
   (0 for a horizontal mouth; radians in [-pi/2, pi/2]).

The mouth centre: the original took the mid-point of the mouth corners (dlib points 48
and 54) inside its jaw-bounded crop; lipflow's mouth crops are centred on the mouth
landmarks, so the crop centre stands in for it.

Time base (``modelInput_*.py``): the auditory spectrogram has 125 frames a second
(8 ms); the original dropped its first 2 frames and reflect-padded the rest to a whole
number of slices (3-s GRID clip: 375 - 2 = 373 -> 390 = 15 slices of 26). The video-rate
features are interpolated to those steps with ``scipy.ndimage.map_coordinates`` (cubic
spline, its default), given first and second differences (``np.diff`` after repeating the
first row: the first difference of step 0 is 0) and cut into non-overlapping 26-step
slices, each one training sample.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import map_coordinates
from skimage.filters import threshold_yen
from skimage.measure import label, regionprops

from lipflow.tasks.common.errors import ConfigError

FEATURE_NAMES = (
    "box_width",
    "box_height",
    "area",
    "centroid_x",
    "centroid_y",
    "mean_intensity",
    "orientation",
)
N_FEATURES = len(FEATURE_NAMES)
#: steps a slice (the original: 390 steps / 15 slices)
SLICE_STEPS = 26
#: auditory spectrogram frames a second (NSL paras [8 8 -2 -1]: 8-ms frames)
AUD_FRAMES_PER_S = 125.0
#: auditory frames the original dropped at the start of every clip (``mat['y'].T[:, 2:]``)
AUD_SKIP_FRAMES = 2
#: OpenCV's default JPEG quality, what ``cv2.imwrite`` used
JPEG_QUALITY = 95
#: the original's "no region yet" distance (px)
_FAR = 1000.0


def gabor_kernel() -> np.ndarray:
    """The original's kernel: (12, 12) requested, sigma 5, theta pi/2, lambda 10, gamma 0.5,
    psi 0 (OpenCV centres it: 13x13 taps, x and y from -6 to 6)."""
    return cv2.getGaborKernel(
        (12, 12), sigma=5, theta=math.pi / 2, lambd=10, gamma=0.5, psi=0, ktype=cv2.CV_32F
    )


def gabor_picture(frame: np.ndarray, jpeg: bool = True) -> np.ndarray:
    """(H, W) uint8 grey crop -> (H, W) uint8 Gabor picture (steps 1-2 of the module doc).

    ``jpeg=False`` skips the JPEG round trip (the 8-bit energy itself).
    """
    gray = np.asarray(frame, dtype=np.float32) / 255.0
    energy = cv2.filter2D(gray, cv2.CV_32F, gabor_kernel()) ** 2
    picture = np.clip(np.rint(energy), 0, 255).astype(np.uint8)
    if not jpeg:
        return picture
    ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ConfigError("OpenCV could not JPEG-encode a Gabor picture")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _orientation_xy(region) -> float:
    """Major-axis angle from the x axis (skimage 0.14 ``coordinates='xy'``)."""
    var_x, neg_cov, _, var_y = region.inertia_tensor.flat  # rc tensor: [[var_c, -cov], ...]
    if var_x == var_y:
        return math.pi / 4 if -neg_cov >= 0 else -math.pi / 4
    return 0.5 * math.atan2(-2.0 * neg_cov, var_x - var_y)


def choose_region(regions, centre: tuple[float, float]):
    """The original's region rule (step 4 of the module doc) over skimage ``regionprops``
    in label order; None when every region is 1000 px or more off on an axis."""
    cx, cy = centre
    best, best_dx, best_dy = None, _FAR, _FAR
    for region in regions:
        row, col = region.centroid
        dx, dy = abs(cx - col), abs(row - cy)
        if dx < best_dx and dy < best_dy:
            best, best_dx, best_dy = region, dx, dy
    return best


def picture_features(picture: np.ndarray, centre: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W) uint8 Gabor picture -> the seven features (steps 3-5 of the module doc).

    ``centre`` is the mouth centre ``(x, y)`` in pixels (default: the crop centre). A
    flat picture is one region covering the crop (its threshold is its only value).
    """
    pic = np.asarray(picture)
    if pic.dtype != np.uint8 or pic.ndim != 2:
        raise ConfigError(f"a Gabor picture is (H, W) uint8, got {pic.dtype} {pic.shape}")
    cx, cy = centre if centre is not None else ((pic.shape[1] - 1) / 2, (pic.shape[0] - 1) / 2)
    mask = pic >= threshold_yen(pic)
    best = choose_region(regionprops(label(mask), intensity_image=pic), (cx, cy))
    if best is None:  # every region is >= 1000 px off: the original would crash
        return np.zeros(N_FEATURES, dtype=np.float32)
    r0, c0, r1, c1 = best.bbox
    row, col = best.centroid
    return np.array(
        [c1 - c0, r1 - r0, best.area, col, row, best.intensity_mean, _orientation_xy(best)],
        dtype=np.float32,
    )


def _frames(mouth_frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(mouth_frames)
    if frames.ndim != 3:
        raise ConfigError(f"Gabor inputs need (T, H, W) grayscale frames, got {frames.shape}")
    return frames


def gabor_pictures(mouth_frames: np.ndarray, jpeg: bool = True) -> np.ndarray:
    """(T, H, W) uint8 grey crops -> (T, H, W) uint8 Gabor pictures."""
    return np.stack([gabor_picture(f, jpeg) for f in _frames(mouth_frames)])


def gabor_features(mouth_frames: np.ndarray, jpeg: bool = True) -> np.ndarray:
    """(T, H, W) uint8 grey crops -> (T, 7) float32 features (pixels, 0..255, radians)."""
    return np.stack([picture_features(gabor_picture(f, jpeg)) for f in _frames(mouth_frames)])


# ------------------------------------------------------------------ time base and slices


def steps_for_aud_frames(aud_frames: int) -> int:
    """Steps of a clip of ``aud_frames`` auditory frames: less the 2 dropped, rounded up
    to whole 26-step slices (3 s: 375 - 2 = 373 -> 390 = 15 x 26)."""
    return max(1, math.ceil((aud_frames - AUD_SKIP_FRAMES) / SLICE_STEPS)) * SLICE_STEPS


def time_steps(video_frames: int, fps: float) -> int:
    """Steps of a clip of ``video_frames`` frames (75 at 25 fps -> 375 auditory frames ->
    390 steps), for a batch without audio."""
    return steps_for_aud_frames(math.ceil(video_frames / fps * AUD_FRAMES_PER_S))


def interpolate_features(features: np.ndarray, steps: int) -> np.ndarray:
    """(T, F) video-rate features -> (steps, F): the original's ``interp_Frame``
    (``map_coordinates`` on a ``linspace`` grid, cubic spline, constant mode)."""
    x = np.asarray(features, dtype=np.float64)
    rows = np.linspace(0, x.shape[0] - 1, steps)
    cols = np.arange(x.shape[1], dtype=np.float64)
    grid = np.meshgrid(rows, cols, indexing="ij")
    return map_coordinates(x, grid).astype(np.float32)


def interpolate_pictures(pictures: np.ndarray, steps: int) -> np.ndarray:
    """(T, H, W) -> (steps, H, W) float32, linear in time on the same ``linspace`` grid.

    The original sliced its picture sequences at their own length (358 pictures, 15
    slices of 23); putting them on the auditory steps instead keeps every video slice
    aligned with its 26-step audio slice, as the feature model's are.
    """
    x = np.asarray(pictures, dtype=np.float32)
    pos = np.linspace(0, x.shape[0] - 1, steps)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, x.shape[0] - 1)
    w = (pos - lo).astype(np.float32)[:, None, None]
    return x[lo] * (1 - w) + x[hi] * w


def with_differences(x: np.ndarray, axis: int = 0) -> list[np.ndarray]:
    """``[x, d1, d2]``: first and second differences along ``axis`` after repeating the
    first entry (the original's ``diff``), so each has ``x``'s shape."""
    def diff(a: np.ndarray) -> np.ndarray:
        pad = [(0, 0)] * a.ndim
        pad[axis] = (1, 0)
        return np.diff(np.pad(a, pad, mode="edge"), axis=axis)

    d1 = diff(np.asarray(x))
    return [np.asarray(x), d1, diff(d1)]


def feature_inputs(features: np.ndarray, steps: int) -> np.ndarray:
    """(T, 7) -> (steps // 26, 26, 21): interpolated, with differences, sliced."""
    x = interpolate_features(features, steps)
    full = np.concatenate(with_differences(x, axis=0), axis=1).astype(np.float32)
    return full.reshape(steps // SLICE_STEPS, SLICE_STEPS, 3 * N_FEATURES)


def picture_inputs(pictures: np.ndarray, steps: int, hw: tuple[int, int]) -> np.ndarray:
    """(T, H, W) uint8 Gabor pictures -> (steps // 26, 3, h, w, 26) float32: resized to
    ``hw`` (``cv2.resize``, bilinear, as the original's 40x80), put on the steps, picture
    plus differences as 3 channels, sliced (the original's layout: channels, height,
    width, time)."""
    h, w = int(hw[0]), int(hw[1])
    small = np.stack([cv2.resize(p, (w, h)) for p in pictures]).astype(np.float32)
    x = interpolate_pictures(small, steps)  # (steps, h, w)
    cube = np.stack(with_differences(x, axis=0))  # (3, steps, h, w)
    cube = cube.reshape(3, steps // SLICE_STEPS, SLICE_STEPS, h, w)
    return np.ascontiguousarray(cube.transpose(1, 0, 3, 4, 2)).astype(np.float32)
