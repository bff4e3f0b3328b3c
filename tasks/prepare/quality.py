"""Per-clip quality signals for the clip manifest: damage, repeats, occlusion, AV offset.

Why: a clip can pass face tracking and still be bad training data: the stream is
damaged (an MPEG stream starting without its reference frame shows a flat grey frame and
smeared blocks: 11 of GRID s1's 1000 videos), frames are repeats of a variable-frame-rate
source, something covers the mouth, or the sound is shifted against the picture. Each is
measured here from what prepare already holds (decoded frames, FaceMesh landmarks, the
clip's audio block) and written into the clip manifest (docs/contracts.md section 3).
Only damage rejects by default; the others are reported, and reject only where their
``preprocess`` thresholds are set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from lipflow.tasks.faces.landmarks import (
    INNER_LIPS,
    LEFT_EYE_CORNERS,
    LIP_CORNERS,
    NOSE_TIP,
    OUTER_LIPS,
    RIGHT_EYE_CORNERS,
    Landmarks,
)
from lipflow.tasks.media.yuv import YuvFrame

CORRUPT = "corrupt video stream"

FLAT_STD = 1.0
"""A frame whose luma varies less than this (grey levels, sd) is flat..."""
GREY_RANGE = (64.0, 192.0)
"""...and a flat frame of mid-grey mean is damage (an MPEG decoder's fill for a missing
reference frame); flat black or white frames are fades and pass."""

DUPLICATE_DIFF = 0.05
"""Two consecutive distinct source frames whose luma differs by less than this (mean
absolute, grey levels, on every 2nd pixel) are one frame repeated. On GRID s1 (1000 videos,
74,000 frame pairs) 12 pairs fall below it: a talking face never stands this still, while a
repeated frame re-encoded by the same codec differs by 0 or a few hundredths."""

MIN_PRESENCE = 0.5
"""FaceMesh presence probability below this marks a frame's mouth as not seen (on GRID
s1 the presence is 1.00 on every frame of 50 videos)."""

MOUTH_TO_EYE_SPAN = (0.3, 1.1)
"""Plausible lip-corner width as a fraction of the outer eye-corner span (33-263). Measured
on FaceMesh landmarks: 0.50-0.64 on 3,000 frames of 40 GRID s1 clips, 0.44-0.74 on the
3,213 frames of 18 real clips' kept windows (frontal, 3/4, profile, grimaces;
docs/real_footage.md)."""

MAX_LAG_FRAMES = 15


class FrameFlags:
    """Pass decoded frames through, remembering which the decoder marked corrupt.

    Prepare's frame buffers keep only images; this records ``frame.corrupt`` (set by the
    decoder on frames it concealed errors in) for output frame ``n`` at ``flags[n]``.
    A truncated file's last decoded frame is always partial and marked: once the stream
    has ended, that frame (and the resampler's repeats of it) does not count, so a cut
    download keeps what decoded whole, as the media readers promise
    (:mod:`lipflow.tasks.media.container`).
    """

    def __init__(self, frames: Iterable[Any]) -> None:
        self._frames = frames
        self.flags: list[bool] = []
        self._last_image: Any = None
        self._last_run = 0  # trailing output frames showing the last decoded image
        self.ended = False

    def __iter__(self) -> Iterator[Any]:
        for frame in self._frames:
            self.flags.append(bool(getattr(frame, "corrupt", False)))
            image = getattr(frame, "image", None)
            self._last_run = self._last_run + 1 if image is self._last_image else 1
            self._last_image = image
            yield frame
        self.ended = True

    def count(self, start: int, stop: int) -> int:
        """How many of output frames ``start..stop-1`` were marked corrupt."""
        stop = min(stop, len(self.flags))
        if self.ended:  # the stream's last decoded frame is the truncation point
            stop = min(stop, len(self.flags) - self._last_run)
        return int(sum(self.flags[start:stop])) if stop > start else 0


def _luma(image: Any) -> np.ndarray:
    if isinstance(image, YuvFrame):
        return image.y
    image = np.asarray(image)
    return image.mean(axis=2) if image.ndim == 3 else image


def _half(image: Any) -> np.ndarray:
    """Every 2nd pixel of the luma both ways, as a contiguous uint8 plane for OpenCV."""
    y = _luma(image)[::2, ::2]
    return np.ascontiguousarray(y if y.dtype == np.uint8 else np.clip(y, 0, 255).astype(np.uint8))


def damaged_frames(images: Sequence[Any]) -> int:
    """Frames of ``images`` that are flat mid-grey (see :data:`FLAT_STD`)."""
    count = 0
    for image in images:
        # OpenCV's one-pass mean and sd of the uint8 plane: numpy's std of every frame
        # (a float copy, two passes) was ~6 ms of a 75-frame clip
        mean, sd = cv2.meanStdDev(np.ascontiguousarray(_luma(image)[::2, ::2]))
        if sd[0, 0] < FLAT_STD and GREY_RANGE[0] <= mean[0, 0] <= GREY_RANGE[1]:
            count += 1
    return count


def duplicate_frame_frac(images: Sequence[Any]) -> float:
    """Fraction of frames (after the first) that repeat the one before.

    Frames the resampler repeated on purpose (a 25 fps source read at 30 fps shares one
    decoded image between two output frames) are the same object and are not counted:
    only repeats inside the source are.
    """
    if len(images) < 2:
        return 0.0
    repeats = 0
    prev = _half(images[0])
    for before, image in zip(images, images[1:], strict=False):
        if image is before:
            continue
        cur = _half(image)
        if cur.shape == prev.shape and cv2.norm(cur, prev, cv2.NORM_L1) / cur.size < DUPLICATE_DIFF:
            repeats += 1
        prev = cur
    return repeats / (len(images) - 1)


def mouth_occluded(landmarks: Landmarks) -> np.ndarray:
    """(T,) bool: frames whose mouth is not plausibly seen.

    Presence below :data:`MIN_PRESENCE`, or a mouth shape no face makes: lips narrower or
    wider than :data:`MOUTH_TO_EYE_SPAN` of the outer eye-corner span, inner lips crossed by
    more than a tenth of the mouth width, or a mouth not below the nose. The lip width is
    measured against the eye span, not the eye-to-mouth height: a head turned to profile
    foreshortens both the lips and the eye span but not that height (on real LRS3 profile
    frames lips / height fell to 0.42, under the 0.5 bound that bound used, and turned heads
    scored as occluded), and a head tilted down shortens the height alone.
    """
    p = landmarks.points
    left, right = p[:, LIP_CORNERS[0]], p[:, LIP_CORNERS[1]]
    upper, lower = p[:, INNER_LIPS[0]], p[:, INNER_LIPS[1]]
    eyes = p[:, [*RIGHT_EYE_CORNERS, *LEFT_EYE_CORNERS]].mean(axis=1)
    mouth = (left + right) / 2
    width = np.linalg.norm(right - left, axis=1)
    height = np.linalg.norm(mouth - eyes, axis=1)
    span = np.linalg.norm(p[:, LEFT_EYE_CORNERS[1]] - p[:, RIGHT_EYE_CORNERS[0]], axis=1)
    ratio = width / np.maximum(span, 1e-6)
    down = (mouth - eyes) / np.maximum(height, 1e-6)[:, None]
    crossed = ((upper - lower) * down).sum(axis=1) > 0.1 * width
    nose_below = ((p[:, NOSE_TIP] - mouth) * down).sum(axis=1) > 0
    low, high = MOUTH_TO_EYE_SPAN
    return ((landmarks.presence < MIN_PRESENCE) | (ratio < low) | (ratio > high)
            | crossed | nose_below)


def lip_openings(landmarks: Landmarks) -> np.ndarray:
    """(2, T) lip opening in units of the mouth width (lip corners 61-291): between the
    outer-lip midpoints (0, 17) and between the inner lips (13, 14).

    Both, because each misses something: the inner pair sits at 0 on every closed-mouth
    frame, the outer one moves with the lips' shape too. On 98 GRID s1 clips
    (``benchmarks/av_offset.py``, every 10th video from the 6th) the pair recovers known
    audio shifts within +-1 frame in 92.5 % of cases, the outer one alone 91.7 %.
    """
    p = landmarks.points
    width = np.maximum(np.linalg.norm(p[:, LIP_CORNERS[1]] - p[:, LIP_CORNERS[0]], axis=1), 1e-6)
    return np.stack([np.linalg.norm(p[:, lips[1]] - p[:, lips[0]], axis=1) / width
                     for lips in (OUTER_LIPS, INNER_LIPS)])


MOUTH_CENTRE = ((0.35, 0.8), (0.25, 0.75))
"""Rows and columns, as fractions of the mouth crop, whose mean luma is the darkness
signal: the crop's centre, where an opening mouth shows its dark inside. Chosen once
from the crop's geometry (the window centres the lips), not tuned on the benchmark clips."""

APPEARANCE_COMPONENTS = 4
"""Principal components of a clip's mouth crops that the lips between FaceMesh's frames
are refitted on. On three sets of ~100 GRID s1 clips (``benchmarks/av_offset.py --first
0 / 5 / 7``), FaceMesh on every 3rd frame: 4 components with the darkness signal recover
90.0 / 92.3 / 97.4 % of known shifts within +-1 frame (every frame, lips alone: 88.5 /
92.5 / 98.1 %); with 3 components and no darkness, 84.6 % on the first set."""


def _grey_crops(mouth: np.ndarray) -> np.ndarray:
    """(T, H, W) float64 of grey mouth crops; colour ones (T, H, W, 3) by channel mean."""
    crops = np.asarray(mouth, dtype=np.float64)
    return crops.mean(axis=3) if crops.ndim == 4 else crops


def mouth_darkness(mouth: np.ndarray) -> np.ndarray:
    """(T,) minus the mean luma of each mouth crop's centre (:data:`MOUTH_CENTRE`).

    An open mouth darkens the centre of the crop; measured from pixels on every frame,
    so it sees what FaceMesh's skipped frames would have. Alone it recovers known shifts
    as well as linearly interpolated lips from every 2nd frame on GRID (87.7 / 90.2 /
    91.2 % at every 3rd frame, three sets).
    """
    crops = _grey_crops(mouth)
    height, width = crops.shape[1:3]
    (top, bottom), (left, right) = MOUTH_CENTRE
    centre = crops[:, int(height * top) : int(height * bottom),
                   int(width * left) : int(width * right)]
    return -centre.mean(axis=(1, 2))


def appearance_components(mouth: np.ndarray, count: int = APPEARANCE_COMPONENTS) -> np.ndarray:
    """(T, count) scores of a clip's mouth crops on their first principal components.

    The crops (every 2nd pixel both ways) are centred on the clip's mean crop; the scores
    come from the eigenvectors of the T x T Gram matrix (a 3-s clip: 75 x 75), cheaper
    than an SVD of the pixels and the same scores.
    """
    crops = _grey_crops(mouth)
    pixels = crops[:, ::2, ::2].reshape(len(crops), -1)
    pixels = pixels - pixels.mean(axis=0)
    values, vectors = np.linalg.eigh(pixels @ pixels.T)
    order = np.argsort(values)[::-1][:count]
    return vectors[:, order] * np.sqrt(np.maximum(values[order], 0.0))


def fitted_lip_openings(landmarks: Landmarks, mouth: np.ndarray | None) -> np.ndarray:
    """(2, T) :func:`lip_openings`, with the frames FaceMesh skipped refitted from pixels.

    Where FaceMesh ran only on some frames (``landmarks.measured``), each opening is
    regressed, per clip, on the mouth crops' :func:`appearance_components` over the
    measured frames, and the fit predicts the frames between: the crops show a closure
    that falls between two measured frames, which linear interpolation of the
    landmarks smooths away. Measured frames keep their measured value. Unchanged where
    every frame was measured, without crops, or with too few measured frames to fit.
    """
    openings = lip_openings(landmarks)
    measured = landmarks.measured
    if mouth is None or measured is None or measured.all() or len(mouth) != len(measured):
        return openings
    known = np.flatnonzero(measured)
    if len(known) < APPEARANCE_COMPONENTS + 2:
        return openings
    design = np.column_stack([appearance_components(mouth), np.ones(len(mouth))])
    fitted = np.empty_like(openings)
    for row, values in enumerate(openings):
        coef, *_ = np.linalg.lstsq(design[known], values[known], rcond=None)
        fitted[row] = design @ coef
        fitted[row, known] = values[known]
    return fitted


def lip_signals(landmarks: Landmarks, mouth: np.ndarray | None = None) -> np.ndarray:
    """(K, T) the visual signals :func:`av_offset` correlates with the sound: the two
    :func:`fitted_lip_openings` and, with crops, the :func:`mouth_darkness`.

    With both, FaceMesh on every 3rd frame recovers known shifts as well as lips alone on
    every frame (93.2 % against 93.0 % averaged over the three sets of GRID clips above),
    at a third of FaceMesh's cost; with FaceMesh on every frame the darkness adds about a
    point (92.1 % against 90.5 % on ``--videos 200``).
    """
    openings = fitted_lip_openings(landmarks, mouth)
    if mouth is None or len(mouth) != openings.shape[1]:
        return openings
    return np.vstack([openings, mouth_darkness(mouth)[None]])


SPEECH_BANDS_HZ = ((100.0, 500.0), (500.0, 1500.0), (1500.0, 4000.0))
"""The envelope is taken per band (voicing, first formant, second formant and
fricatives): each follows a different part of the mouth's motion, and their correlations
add up. On 98 GRID s1 clips one 300-3000 Hz band recovers 85 % of known shifts within
+-1 frame, these three 92 %, one wide 100-6000 Hz band 78 %."""


def audio_envelopes(wav: np.ndarray, num_frames: int, fps: float,
                    sample_rate_hz: int) -> np.ndarray:
    """(bands, num_frames) log energy of each :data:`SPEECH_BANDS_HZ` band under each
    video frame (silence past the audio's end)."""
    from scipy.signal import butter, sosfilt  # here: the prepare driver imports this module

    wav = np.asarray(wav, dtype=np.float64)
    edges = np.round(np.arange(num_frames + 1) * sample_rate_hz / fps).astype(np.int64)
    out = np.zeros((len(SPEECH_BANDS_HZ), num_frames))
    for b, band in enumerate(SPEECH_BANDS_HZ):
        if wav.size <= 32 or band[1] >= sample_rate_hz / 2:
            continue
        sos = butter(4, band, btype="band", fs=sample_rate_hz, output="sos")
        filtered = sosfilt(sos, wav)
        # mean energy per frame from one running sum (a loop over frames cost ~8 ms a clip)
        running = np.concatenate([[0.0], np.cumsum(filtered * filtered)])
        bounds = np.minimum(edges, len(filtered))
        counts = np.diff(bounds)
        sums = running[bounds[1:]] - running[bounds[:-1]]
        out[b] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return np.log(out + (32768.0 * 1e-3) ** 2)  # floor: -60 dB full scale


@dataclass(frozen=True)
class AvOffset:
    """The lag of the audio behind the video, in frames (positive: sound comes late),
    and how clearly it stands out (peak correlation minus the median over all lags)."""

    frames: int
    confidence: float


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    sd = x.std()
    return x / sd if sd > 1e-9 else x * 0.0


LEVEL_WEIGHT = 0.5
"""Weight of the opening-vs-loudness correlation added to the change-vs-change one. The
change correlation has the sharp peak; GRID's regular word rhythm gives it side peaks a
word apart, which the broad level correlation outweighs: on 98 GRID s1 clips (outer lips,
one 300-3000 Hz band), shifts
within +-1 frame recovered 80 % with the change term alone, 85 % with 0.5 of the level
term (83 % at 0.25, 84 % at 1)."""


def _cross(a: np.ndarray, e: np.ndarray, max_lag: int) -> np.ndarray:
    """Correlation of normalised ``a`` and ``e`` at lags ``-max_lag..max_lag`` (zero
    beyond either end, divided by the full length)."""
    n = len(a)
    full = np.correlate(_normalise(e), _normalise(a), mode="full") / n  # n - 1 + L: lag L
    return full[n - 1 - max_lag : n + max_lag]


def av_offset(openings: np.ndarray, envelopes: np.ndarray,
              max_lag: int = MAX_LAG_FRAMES) -> AvOffset | None:
    """Training-free audio-visual offset: the lag that best correlates lips and sound.

    ``openings`` (K, T) or (T,) lip signals, ``envelopes`` (B, T) or (T,) audio
    signals, per video frame. For every pair, two normalised cross-correlations over lags
    ``-max_lag..max_lag`` (lag L pairs video frame t with audio frame t + L; frames
    beyond either end count as zero, so a large lag with little overlap cannot win on a
    few lucky frames): of the frame-to-frame *changes* (a mouth opening, a sound rising:
    the sharp peak) plus :data:`LEVEL_WEIGHT` times that of the levels (open mouth, loud
    sound: broad, but without side peaks a word apart). The pairs' scores are averaged.
    None when every pair is flat (a still mouth, silence) or the clip is shorter than two
    lag ranges.
    """
    lips = np.atleast_2d(np.asarray(openings, dtype=np.float64))
    sound = np.atleast_2d(np.asarray(envelopes, dtype=np.float64))
    n = min(lips.shape[1], sound.shape[1])
    if n < 2 * max_lag + 2:
        return None
    scores, pairs = np.zeros(2 * max_lag + 1), 0
    for a in lips[:, :n]:
        for e in sound[:, :n]:
            if np.ptp(a) < 1e-9 or np.ptp(e) < 1e-9:
                continue
            scores += (_cross(np.diff(a), np.diff(e), max_lag)
                       + LEVEL_WEIGHT * _cross(a[1:], e[1:], max_lag))
            pairs += 1
    if not pairs:
        return None
    scores /= pairs
    best = int(np.argmax(scores))
    return AvOffset(best - max_lag, float(scores[best] - np.median(scores)))


QUALITY_COLUMNS = ("mouth_occluded_frac", "duplicate_frame_frac", "av_offset_frames",
                   "av_sync_confidence")


def corrupt_reason(decoder_marked: int, images: Sequence[Any], max_damaged: int,
                   max_decode_errors: int) -> str | None:
    """``corrupt video stream (...)`` when more than ``max_damaged`` of ``images`` are
    flat mid-grey or more than ``max_decode_errors`` were marked corrupt by the decoder,
    else None."""
    flat = damaged_frames(images)
    if flat <= max_damaged and decoder_marked <= max_decode_errors:
        return None
    return (f"{CORRUPT} ({decoder_marked} frames with decode errors, {flat} flat grey, "
            f"of {len(images)})")


def clip_signals(images: Sequence[Any], landmarks: Landmarks | None, wav: np.ndarray,
                 fps: float, sample_rate_hz: int,
                 mouth: np.ndarray | None = None) -> dict[str, Any]:
    """The manifest's quality columns of one clip (None where not measurable).

    ``images``, ``landmarks`` and the ``mouth`` crops cover the clip's valid frames,
    ``wav`` its valid audio.
    """
    out: dict[str, Any] = dict.fromkeys(QUALITY_COLUMNS)
    out["duplicate_frame_frac"] = duplicate_frame_frac(images)
    if landmarks is None:
        return out
    out["mouth_occluded_frac"] = float(mouth_occluded(landmarks).mean())
    if len(wav):
        offset = av_offset(lip_signals(landmarks, mouth),
                           audio_envelopes(wav, len(landmarks.points), fps, sample_rate_hz))
        if offset is not None:
            out["av_offset_frames"] = offset.frames
            out["av_sync_confidence"] = round(offset.confidence, 4)
    return out


def quality_reason(signals: dict[str, Any], typed: Any) -> str | None:
    """The rejection reason the ``preprocess`` thresholds give ``signals``, or None.

    ``typed`` is the checked ``preprocess`` section; every threshold is off (None) by
    default, so by default nothing here rejects.
    """
    occluded, duplicates = signals["mouth_occluded_frac"], signals["duplicate_frame_frac"]
    limit = typed.max_mouth_occluded_frac
    if limit is not None and occluded is not None and occluded > limit:
        return f"mouth occluded in {occluded:.2f} of frames (above {limit})"
    limit = typed.max_duplicate_frame_frac
    if limit is not None and duplicates is not None and duplicates > limit:
        return f"repeated frames {duplicates:.2f} of the clip (above {limit})"
    offset, confidence = signals["av_offset_frames"], signals["av_sync_confidence"]
    limit = typed.max_abs_av_offset_frames
    if (limit is not None and offset is not None and abs(offset) > limit
            and confidence >= typed.min_av_sync_confidence):
        return (f"audio-visual offset {offset:+d} frames (confidence {confidence:.2f}; "
                f"limit {limit})")
    return None
