"""The params.yaml schema: one-line errors, defaults for left-out keys, the project round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.docs import render
from lipflow.tasks.settings.project import load_params, load_settings
from lipflow.tasks.settings.schema import Params
from lipflow.tasks.settings.validation import complete


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_project_params_round_trip_unchanged(project_root: Path) -> None:
    raw = yaml.safe_load((project_root / "params.yaml").read_text())
    loaded = load_params(project_root / "params.yaml")
    # the same keys, values, spelling (55 stays an int) and order: stores record these
    assert json.dumps(loaded) == json.dumps(raw)


def test_schema_defaults_are_the_project_file(project_root: Path) -> None:
    raw = yaml.safe_load((project_root / "params.yaml").read_text())
    assert complete({}) == raw
    assert load_settings(project_root / "params.yaml") == Params()


def test_unknown_key_names_section_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"preprocess": {"detect_evry_frames": 3}})
    with pytest.raises(ConfigError) as err:
        load_params(path)
    message = str(err.value)
    assert message == f"{path}: unknown key 'preprocess.detect_evry_frames'"
    assert "\n" not in message


def test_bad_enum_value(tmp_path: Path) -> None:
    path = _write(tmp_path, {"features": {"store": {"codec": "gzip"}}})
    with pytest.raises(ConfigError, match=r"'features\.store\.codec'.*'lz4'.*'gzip'"):
        load_params(path)


def test_strict_types_and_nested_keys() -> None:
    with pytest.raises(ConfigError, match=r"bad value for 'features\.mfec\.n_fft'"):
        complete({"features": {"mfec": {"n_fft": "1024"}}})
    with pytest.raises(ConfigError, match=r"missing key 'lip2wav\.presets\.chem\.fps'"):
        complete({"lip2wav": {"presets": {"chem": {"crop": "full"}}}})
    with pytest.raises(ConfigError, match=r"unknown key 'splits\.mine\.train'"):
        complete({"splits": {"mine": {"kind": "seen", "speakers": ["s1"], "train": ["s1"]}},
                  "train": {"split": "mine"}})
    with pytest.raises(ConfigError, match=r"train\.split 'nope' is not a name under splits"):
        complete({"train": {"split": "nope"}})


def test_missing_key_gets_the_default(tmp_path: Path) -> None:
    path = _write(tmp_path, {"preprocess": {"detect_every_frames": 10}})
    params = load_params(path)
    assert params["preprocess"]["detect_every_frames"] == 10
    assert params["preprocess"]["detector"] == "auto"
    assert params["features"]["mel"]["hop_samples"] == 200
    assert load_settings(path).preprocess.min_face_score == 0.5


def test_no_params_file_means_the_built_in_defaults(tmp_path: Path, monkeypatch) -> None:
    from lipflow.tasks.settings.project import BUILT_IN, find_project, read_params_file

    monkeypatch.delenv("LIPFLOW_ROOT", raising=False)
    monkeypatch.delenv("LIPFLOW_PARAMS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_project() is None
    assert read_params_file() == ({}, BUILT_IN)
    assert load_params() == complete({})
    assert load_params()["user_corpus"]["fps"] == 25


def test_lipflow_params_names_the_file_in_use(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path, {"preprocess": {"detector": "full_range"}})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIPFLOW_PARAMS", str(path))
    assert load_params()["preprocess"]["detector"] == "full_range"
    monkeypatch.setenv("LIPFLOW_PARAMS", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="no params file at .*missing.yaml"):
        load_params()


def test_preset_overrides_stay_optional() -> None:
    params = complete({"train": {"lip2wav": {"lr": 3e-4, "epochs": 5}}})
    section = params["train"]["lip2wav"]
    assert section["lr"] == 3e-4 and section["epochs"] == 5
    assert "batch_size" not in section  # not set, so the preset's value stays in charge
    assert section["tiny"]["batch_size"] == 2
    with pytest.raises(ConfigError, match=r"'train\.lip2wav\.epochs': may be left out"):
        complete({"train": {"lip2wav": {"epochs": None}}})


def test_docs_are_generated_from_the_schema(project_root: Path) -> None:
    committed = (project_root / "docs" / "params.md").read_text(encoding="utf-8")
    assert committed == render(), "run: python -m lipflow.tasks.settings.docs"


def test_params_file_reads_the_same_with_the_fast_loader() -> None:
    """read_params_file uses libyaml's safe loader when present: the same mapping as
    PyYAML's own safe_load of the shipped params.yaml."""
    from lipflow.tasks.settings.project import read_params_file

    path = Path(__file__).resolve().parents[1] / "params.yaml"
    data, _name = read_params_file(path)
    assert data == yaml.safe_load(path.read_text(encoding="utf-8"))
