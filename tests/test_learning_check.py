"""benchmarks/learning_check.py end to end on a tiny fake store, one second a model.

Only that the check runs for every registered model through the registry interface and
reports what it promises (a row per metric, finite figures, the same rows in the JSON);
whether a model learns is for the script on real GRID, never for the suite.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lipflow.models.registry import MODELS
from lipflow.tasks.settings.project import load_params
from tests.support.benchmark_scripts import load_benchmark
from tests.support.clips import build_store

SPEECH_METRICS = {"corr2", "stoi", "wer"}


def _script():
    return load_benchmark("learning_check")


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_learning_check_rows_and_json(tmp_path: Path, one_thread) -> None:
    lc = _script()
    # the tiny presets read the default crops: 96x96 faces (lip2wav), 96x96 mouths
    # (avsync takes their central 60x96)
    store, _ = build_store(tmp_path, 6, face_px=96, mouth_hw=(96, 96))
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params["features"]["mel"]["griffin_lim_iters"] = 4  # vocoding speed, not quality
    runs = lc.learning_check([store], seconds_per_model=1.0, test_clips=2, params=params,
                             device="cpu", log=lambda _msg: None, ceiling=True)
    assert [r.model for r in runs] == list(MODELS)
    for run in runs:
        assert run.steps >= 1 and run.train_clips == 4 and run.test_clips == 2
        metrics = {row.metric for row in run.rows}
        kind = MODELS[run.model].kind
        if kind == "speech":
            assert SPEECH_METRICS <= metrics and metrics & {"mel_l1", "spec_l1"}
        else:
            assert metrics == {"eer", "auc"}
        for row in run.rows:
            assert math.isfinite(row.model_value) and math.isfinite(row.baseline_value), row
            assert row.verdict in ("beats", "does not beat")
            assert row.clips > 0
            assert math.isfinite(row.ceiling_value) == (kind == "speech"), row
            # the speech models' second baseline, the training set's mean frame
            assert math.isfinite(row.mean_frame_value) == (kind == "speech"), row
    table = lc.format_table(runs).splitlines()
    assert table[0].split()[:4] == ["model", "budget", "steps", "metric"]
    assert lc.format_table(runs).splitlines()[0].split()[-5:] == [
        "verdict", "mean", "frame", "verdict", "ceiling"]
    assert len(table) == 1 + sum(len(r.rows) for r in runs)
    ratios = lc.ratio_lines(runs)
    assert ratios and all(line.startswith("ratio ") and "goal" in line for line in ratios)
    data = lc.to_json(runs, {"size": "tiny"})
    out = json.loads(json.dumps(data, allow_nan=False))  # NaN written as null
    assert set(out["models"]) == set(MODELS)
    assert out["models"]["avsync"]["rows"][0]["metric"] == "eer"
    assert out["models"]["lip2wav"]["rows"][0]["beats_mean_frame"] in (True, False)


def test_learning_check_cli_rejects_bad_manifest(tmp_path: Path, capsys) -> None:
    lc = _script()
    store, _ = build_store(tmp_path, 3)
    code = lc.main(["--store", str(store), "--manifest", str(tmp_path / "other.parquet")])
    assert code == 2
    assert "is not the manifest beside" in capsys.readouterr().err


def test_learning_check_scores_the_best_validated_weights(tmp_path: Path, one_thread) -> None:
    """With a val part, the weights scored are the ones that validated best (the trainer's
    ``best.pt`` rule), not the last: their val loss is the lowest of every validation."""
    from lipflow.models.registry import best_criterion, model_config, spec
    from lipflow.models.training import validate
    from lipflow.models.training_step import StepContext

    lc = _script()
    store, _ = build_store(tmp_path, 8, face_px=96, mouth_hw=(96, 96))
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    torch.set_num_threads(1)
    split = lc._seen_split([store], test_clips=2, val_clips=2)
    cfg = model_config(params["train"], "avsync", size="tiny")
    cfg["lr"] = 0.05  # large steps: val loss moves, so the best is rarely the last
    train = lc._loader(lc._dataset([store], "avsync", "train", split, 0, cfg), "train", 4, 0)
    val = lc._loader(lc._dataset([store], "avsync", "val", split, 0), "val", 4, 0)
    assert best_criterion("avsync", cfg) == "loss"
    selection = lc.Selection(val, "loss", 0, {}, every=0.0)  # validate at every epoch end
    device = torch.device("cpu")
    model, info = lc.train_for("avsync", cfg, train, 3.0, device, "wall", selection)
    values = [value for _epochs, value in info["validations"]]
    assert len(values) >= 2 and info["validation_seconds"] > 0
    assert info["chosen_value"] == min(values)
    ctx = StepContext(device=device, autocast_enabled=False, autocast_dtype=torch.float32,
                      scaler=torch.amp.GradScaler("cpu", enabled=False), grad_clip=1.0,
                      epoch=0, step=0, model_name="avsync", cfg=cfg)
    again = validate(spec("avsync"), model, val, device, ctx, 0, {}).loss
    assert again == pytest.approx(info["chosen_value"], rel=1e-5)


def test_learning_check_without_val_part_scores_the_last_weights(tmp_path: Path,
                                                                 one_thread) -> None:
    lc = _script()
    store, _ = build_store(tmp_path, 6, face_px=96, mouth_hw=(96, 96))
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    runs = lc.learning_check([store], models=["avsync"], seconds_per_model=0.5, test_clips=2,
                             params=params, device="cpu", log=lambda _msg: None)
    assert runs[0].selected_by == "last" and runs[0].validations == []
    runs = lc.learning_check([store], models=["avsync"], seconds_per_model=0.5, test_clips=2,
                             params=params, device="cpu", log=lambda _msg: None, val_clips=1,
                             val_every=0.0)
    assert runs[0].selected_by == "best_by loss" and runs[0].val_clips == 1
    assert runs[0].train_clips == 3 and len(runs[0].validations) >= 1
