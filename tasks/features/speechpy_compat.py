"""The one place where lipflow makes speechpy 2.4 run on numpy 2.

Why this exists: speechpy 2.4 (its latest release, 2018) calls ``np.lib.pad`` in
``speechpy.processing.derivative_extraction`` (used by
``speechpy.feature.extract_derivative_feature``) and in ``speechpy.processing.cmvnw``.
numpy 2 removed that alias (``np.pad`` is the same function), so MFEC cubes fail with
``AttributeError: module 'numpy.lib' has no attribute 'pad'``. lipflow needs numpy >= 2
(torch, zarr 3), so pinning numpy below 2 is not an option.

What it does: :func:`ensure_speechpy_numpy2` gives ``speechpy.processing`` (and only it) a
view of numpy in which ``np.lib.pad`` is ``np.pad``; every other attribute is numpy's own.
numpy itself is not modified, so nothing else in the process can start relying on the
removed alias. speechpy's code runs unchanged, which is what lets lipflow claim its MFEC
cubes *are* speechpy's output rather than a reimplementation of it.

Audit of speechpy 2.4 against numpy 2 (``feature.py``, ``processing.py``, ``functions.py``):
``np.lib.pad`` (3 calls, all in ``processing``) is the only breakage. It uses no
``np.int``/``np.float``/``np.bool``/``np.complex`` aliases (``stack_frames`` casts with
``np.int32``; ``zero_handling`` uses ``np.finfo(float)``), and ``scipy.fftpack.dct``
(``mfcc``) still exists in scipy 1.17. The tests exercise every patched call site.

The function is idempotent and a no-op where ``numpy.lib.pad`` still exists (numpy 1.x).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

#: speechpy modules that call ``np.lib.pad`` (checked against speechpy 2.4's source).
PATCHED_MODULES = ("speechpy.processing",)


class _NumpyLibWithPad(types.ModuleType):
    """``numpy.lib`` as speechpy expects it: numpy 1's ``pad`` alias, the rest delegated."""

    def __init__(self) -> None:
        super().__init__("numpy.lib", "numpy.lib plus numpy 1's 'pad' alias, for speechpy")
        self.pad = np.pad

    def __getattr__(self, name: str) -> Any:
        return getattr(np.lib, name)


class _NumpyForSpeechpy(types.ModuleType):
    """``numpy`` with :class:`_NumpyLibWithPad` as ``lib``; everything else is numpy's."""

    def __init__(self) -> None:
        super().__init__("numpy", "numpy as speechpy 2.4 expects it "
                         "(see lipflow.tasks.features.speechpy_compat)")
        self.lib = _NumpyLibWithPad()

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def ensure_speechpy_numpy2() -> bool:
    """Make speechpy's ``np.lib.pad`` calls work on numpy 2; return True if a patch is active.

    Safe to call any number of times (the patch is applied once). Returns False when
    numpy still has ``np.lib.pad`` and nothing needed patching.
    """
    import importlib

    if hasattr(np.lib, "pad"):
        return False
    for name in PATCHED_MODULES:
        module = importlib.import_module(name)
        if not isinstance(module.np, _NumpyForSpeechpy):
            module.np = _NumpyForSpeechpy()
    return True
