"""From ``params.yaml`` to the per-speaker settings a flow needs (no Prefect here).

Kept apart from the CLI so tests and other flows (refresh, serve) build the same
settings the command line does.
"""

from __future__ import annotations

import copy
from typing import Any

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.faces.detection import DETECTORS
from lipflow.tasks.prepare.video import VideoSettings
from lipflow.tasks.settings.project import section
from lipflow.tasks.settings.schema import Lip2WavSpeaker, UserCorpus
from lipflow.tasks.settings.validation import typed_section

#: Corpora whose settings come from their own params.yaml section.
PARAM_CORPORA = ("grid", "lip2wav")


def speaker_settings(params: dict[str, Any], corpus: str, speaker: str,
                     fps: float | None = None, detector: str | None = None,
                     ) -> tuple[VideoSettings, dict[str, Any]]:
    """The :class:`VideoSettings` for one speaker and the params record stored with it.

    GRID uses ``grid.fps`` (and ``grid.detector`` when set); a Lip2Wav speaker applies its
    preset (fps, crop region, face size, detector); any other corpus takes
    ``user_corpus.fps`` (25) and ``user_corpus.detector``. The caller's ``fps`` and
    ``detector`` (the CLI's ``--fps`` / ``--detector``) win over all of them.
    """
    preprocess = copy.deepcopy(section(params, "preprocess"))
    features = copy.deepcopy(section(params, "features"))
    crop = "full"
    # require_audio admits files, it does not change a clip's arrays: recorded only when
    # false (silent clips inside), so default stores keep their bytes.
    recorded = {k: v for k, v in preprocess.items() if k != "require_audio" or v is False}
    record: dict[str, Any] = {"preprocess": recorded, "features": features}
    corpus_detector = None
    if corpus == "grid":
        fps = float(fps or section(params, "grid.fps"))
        record["grid"] = {"fps": fps}
        corpus_detector = (params.get("grid") or {}).get("detector")
    elif corpus == "lip2wav":
        presets = section(params, "lip2wav.presets")
        if speaker not in presets:
            raise ConfigError(f"params.yaml has no lip2wav preset for '{speaker}'; "
                              f"known: {', '.join(sorted(presets))}")
        preset = dict(presets[speaker])
        typed = typed_section(Lip2WavSpeaker, preset, f"lip2wav.presets.{speaker}")
        fps = float(fps or typed.fps)
        crop = typed.crop
        if typed.face_size_px is not None:
            preprocess["face_size_px"] = recorded["face_size_px"] = typed.face_size_px
        corpus_detector = typed.detector
        record["lip2wav"] = {"preset": preset}
    else:
        user = typed_section(UserCorpus, params.get("user_corpus") or {}, "user_corpus")
        fps = float(fps or user.fps)
        corpus_detector = user.detector
    chosen = detector or corpus_detector
    if chosen is not None:
        if chosen not in DETECTORS:
            raise ConfigError(f"--detector must be one of {', '.join(DETECTORS)}, not {chosen!r}")
        preprocess["detector"] = recorded["detector"] = chosen
    settings = VideoSettings(fps=float(fps), preprocess=preprocess, features=features,
                             crop_region=crop)
    return settings, record
