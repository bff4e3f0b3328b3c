"""GaborPic2Speech: the Gabor pictures themselves (not the seven features) to speech.

Everything but the input is GaborFea2Speech's (:mod:`lipflow.models.nets.gabor`: the
autoencoder target, the loss, the auditory spectrogram out, the vocoder); this module
only builds the picture network, so the registry can name it as a model of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lipflow.models.nets.gabor import (  # noqa: F401  (the registry's hooks)
    SPECTROGRAM,
    SPECTROGRAM_FRAMES_PER_SECOND,
    GaborConfig,
    GaborSpeech,
    loss,
    predict,
    recalibrate,
    target,
    to_waveform,
    train_step,
)


def build(cfg: Mapping[str, Any]) -> GaborSpeech:
    """GaborPic2Speech: Conv3D + two LSTM 512 blocks + the dense head (see gabor's doc)."""
    return GaborSpeech(GaborConfig.from_dict({**cfg, "inputs": "pictures"}))
