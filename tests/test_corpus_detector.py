"""The face detector is a per-corpus setting; the CLI's --detector wins over all of them."""

from __future__ import annotations

import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.prepare.settings import speaker_settings
from lipflow.tasks.settings.validation import complete


def detector_of(params: dict, corpus: str, speaker: str = "x", cli: str | None = None) -> str:
    settings, record = speaker_settings(params, corpus, speaker, None, cli)
    assert record["preprocess"]["detector"] == settings.preprocess["detector"]  # recorded
    return settings.preprocess["detector"]


def test_defaults_per_corpus() -> None:
    params = complete({})
    assert detector_of(params, "grid", "s1") == "auto"
    assert detector_of(params, "lip2wav", "chem") == "full_range"  # the preset
    assert detector_of(params, "local") == "auto"
    assert speaker_settings(params, "local", "x")[0].fps == 25.0  # user_corpus.fps


def test_corpus_sections_and_the_cli_override() -> None:
    params = complete({"grid": {"detector": "short_range"},
                       "user_corpus": {"detector": "full_range", "fps": 30}})
    assert detector_of(params, "grid", "s1") == "short_range"
    assert detector_of(params, "youtube") == "full_range"
    assert speaker_settings(params, "youtube", "x")[0].fps == 30.0
    assert speaker_settings(params, "youtube", "x", 24)[0].fps == 24.0  # --fps wins
    for corpus, speaker in (("grid", "s1"), ("lip2wav", "chem"), ("local", "x")):
        assert detector_of(params, corpus, speaker, cli="auto") == "auto"


def test_unknown_detector_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--detector must be one of"):
        speaker_settings(complete({}), "local", "x", None, "huge")
    with pytest.raises(ConfigError, match="user_corpus.detector"):
        complete({"user_corpus": {"detector": "huge"}})
