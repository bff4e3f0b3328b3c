"""Checking and scaling the waveform a feature function is given (shared by mel and MFEC)."""

from __future__ import annotations

import numpy as np

from lipflow.tasks.common.errors import MediaError

INT16_FULL_SCALE = 32768.0


class AudioInputError(MediaError):
    """A waveform or mel given to a feature function has the wrong shape, type or values."""


def waveform(wav: np.ndarray, units: str = "float") -> np.ndarray:
    """Return a 1-D float64 copy of ``wav`` in ``units`` (int16 input is full scale 32768)."""
    arr = np.asarray(wav)
    if arr.ndim != 1 or arr.size == 0:
        raise AudioInputError(f"expected a non-empty mono waveform (1-D), got shape {arr.shape}")
    if arr.dtype == np.int16:
        out = arr.astype(np.float64)
        return out / INT16_FULL_SCALE if units == "float" else out
    if not np.issubdtype(arr.dtype, np.floating):
        raise AudioInputError(
            f"expected int16 samples or floats in [-1, 1], got dtype {arr.dtype}"
        )
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise AudioInputError("waveform holds NaN or infinite samples")
    return out * INT16_FULL_SCALE if units == "int16" else out
