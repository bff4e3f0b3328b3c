"""speechpy's MFEC cube of a clip: log mel-filterbank energies and their "derivatives".

MFEC (``features.mfec``): the log mel-filterbank energy cube of the coupled 3D CNN work
(Torfi et al.): ``speechpy.feature.lmfe`` then ``speechpy.feature.extract_derivative_feature``,
computed by speechpy itself (made to run on numpy 2 by
:mod:`lipflow.tasks.features.speechpy_compat`).
Quirks of speechpy that are kept on purpose, because the contract is "equal to speechpy":

- ``stack_frames(zero_padding=False)`` makes ``floor((N - L) / S)`` frames, one fewer than
  fit: 48000 samples with 320-sample frames give 149, not 150;
- ``low_frequency=0`` is read as "unset" (``low_freq or 300``): the filters span 300 Hz to
  Nyquist;
- ``derivative_extraction`` works along the *filter* axis with edge padding, and its
  subtraction sits on a line of its own (a no-op statement), so the "delta" channels are
  ``(F[j+1] + 2 F[j+2]) / 10`` (then the same again of that), not temporal differences.

Input scaling for MFEC is ``features.mfec.input_units``: ``float`` feeds samples in
[-1, 1) (int16 / 32768), which is what the original project's input pipeline ended up
feeding (``code/speech-input/input_feature.py`` reads with ``scipy.io.wavfile`` and then
re-reads with ``soundfile.read``, whose floats win); ``int16`` feeds int16-valued floats
(``scipy.io.wavfile`` alone). The choice shifts the static channel by ``2 ln 32768``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from lipflow.tasks.features.speechpy_compat import ensure_speechpy_numpy2
from lipflow.tasks.features.waveform import AudioInputError, waveform
from lipflow.tasks.settings.schema import Mfec
from lipflow.tasks.settings.validation import typed_section


def mfec_settings(params: Mfec | Mapping[str, Any] | None) -> Mfec:
    """``features.mfec`` (a mapping, possibly partial; None = the schema's defaults), typed."""
    return typed_section(Mfec, params, "features.mfec")


@functools.cache
def _speechpy() -> Any:
    """speechpy, imported at first use: the prepare driver imports this module but never
    computes a cube (speechpy pulls in scipy.fftpack, ~0.2 s)."""
    import speechpy

    return speechpy


@functools.cache
def _speechpy_filterbank(n_filters: int, coefficients: int, sample_rate_hz: int) -> np.ndarray:
    """``speechpy.feature.filterbanks`` as ``speechpy.feature.mfe`` calls it, built once.

    speechpy rebuilds it on every call, which costs as much as the rest of a clip's MFEC.
    """
    bank = _speechpy().feature.filterbanks(n_filters, coefficients, sample_rate_hz, 0,
                                        sample_rate_hz / 2)
    bank.setflags(write=False)
    return bank


def _speechpy_lmfe(x: np.ndarray, p: Mfec) -> np.ndarray:
    """``speechpy.feature.lmfe(x, ...)`` with lipflow's arguments, step for step.

    The same speechpy functions in the same order as its ``mfe`` + ``lmfe`` (float
    cast, rectangular frames without zero padding, power spectrum, zero handling, the
    filterbank product, log), except that the filterbank comes from a cache. Bit-equal
    to calling ``speechpy.feature.lmfe`` (tested).
    """
    frames = _speechpy().processing.stack_frames(
        x.astype(float), sampling_frequency=p.sample_rate_hz, frame_length=p.frame_seconds,
        frame_stride=p.stride_seconds, filter=lambda n: np.ones((n,)), zero_padding=False,
    )
    power = _speechpy().processing.power_spectrum(frames, p.n_fft)
    bank = _speechpy_filterbank(p.n_filters, power.shape[1], p.sample_rate_hz)
    energies = _speechpy().functions.zero_handling(np.dot(power, bank.T))
    return np.log(energies)


def mfec_cube(wav: np.ndarray, params: Mfec | Mapping[str, Any] | None = None) -> np.ndarray:
    """speechpy's MFEC cube of ``wav``: (frames, n_filters, 3) float32.

    Channels are static log mel-filterbank energies and speechpy's first and second
    "derivatives" (see the module docstring for what speechpy actually computes).
    Frames = ``floor((N - frame) / stride)``: 149 for 48000 samples at 20 ms / 20 ms.
    ``wav``: int16 or float in [-1, 1]; scaled to ``features.mfec.input_units``.
    """
    ensure_speechpy_numpy2()  # idempotent; at first use, not at import
    p = mfec_settings(params)
    x = waveform(wav, p.input_units)
    frame = int(round(p.frame_seconds * p.sample_rate_hz))
    stride = float(round(p.stride_seconds * p.sample_rate_hz))
    if (x.size - frame) // stride < 1:
        raise AudioInputError(
            f"waveform of {x.size} samples is too short for MFEC frames of {frame} samples "
            f"every {int(stride)} (needs at least {frame + int(stride)})"
        )
    lmfe = _speechpy_lmfe(x, p)
    cube = _speechpy().feature.extract_derivative_feature(lmfe)
    return np.ascontiguousarray(cube, dtype=np.float32)
