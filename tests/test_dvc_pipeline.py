"""`dvc repro` builds the sample end to end in a fresh git repo; params changes re-run
only the stages that depend on them and show in `dvc params diff`.

One repo is built per module (each stage starts Prefect, ~10 s), then each test checks
one promise against it, in order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
import zarr

from tests.support.project_copy import commit, copy_project, run
from tests.support.stage_deps import Layout, covers, load_stages, stage_closure

pytestmark = pytest.mark.slow


def edit_params(repo: Path, dotted: str, value: object) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    node = params
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def changed_stages(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed (deps, outs or command)."""
    return set(json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, project_root: Path) -> Path:
    repo = copy_project(project_root, tmp_path_factory.mktemp("dvc") / "repo")
    edit_params(repo, "grid.speakers", ["s1"])
    edit_params(repo, "splits.sample.speakers", ["s1"])  # 3 clips: 1 train, 1 val, 1 test
    edit_params(repo, "runtime.runner", "thread")
    edit_params(repo, "train.cpu_threads", 1)
    commit(repo, "one speaker")
    return repo


@pytest.fixture(scope="module")
def first_repro(repo: Path) -> str:
    out = run(["dvc", "repro"], repo).stdout
    commit(repo, "first repro")
    return out


def test_repro_builds_sample_end_to_end(repo: Path, first_repro: str) -> None:
    assert ran_stages(first_repro) == {
        "download_grid@s1", "prepare_grid@s1", "sync_score@s1",
        *(f"{step}@{model}" for step in ("train", "evaluate")
          for model in ("lip2wav", "avsync", "gabor", "gaborpic", "vcagan")),
    }
    raw = pd.read_parquet(repo / "data/raw/grid/manifests/s1.parquet")
    assert sorted(raw["utterance_id"]) == ["bbaf2n", "bbal6n", "bbbf8p"]
    store = zarr.open_group(repo / "data/features/grid/s1.zarr", mode="r")
    assert store["face"].shape == (3, 75, 96, 96, 3)
    assert store["mel"].shape == (3, 241, 80)
    assert store.attrs["params"]["preprocess"]["mouth_height_px"] == 96
    clips = pd.read_parquet(repo / "data/features/grid/s1.parquet")
    assert clips["kept"].all() and list(clips["store_index"]) == [0, 1, 2]


def test_store_is_a_handful_of_files_for_dvc(repo: Path, first_repro: str) -> None:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = lock["stages"]["prepare_grid@s1"]["outs"]
    store_out = next(o for o in outs if o["path"].endswith("s1.zarr"))
    assert store_out["md5"].endswith(".dir")
    assert store_out["nfiles"] <= 20  # group + one zarr.json and one shard per array


def test_nothing_changed_nothing_reruns(repo: Path, first_repro: str) -> None:
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == set()


def test_metrics_and_plots_are_readable_by_dvc(repo: Path, first_repro: str) -> None:
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    flat = json.dumps(metrics)
    for key in ("lip2wav_protocol", "vcagan_protocol", "stoi", "estoi", "pesq", "pesq_clips",
                "ground_truth", "griffin_lim", "wer", "mcd_db", "mel_l1", "eer"):
        assert f'"{key}"' in flat, key
    lip2wav = json.loads((repo / "metrics/lip2wav.json").read_text())
    for row in (lip2wav, lip2wav["ground_truth"], lip2wav["griffin_lim"]):
        assert "pesq_excluded" in row["lip2wav_protocol"]  # {} when none: dvc hides it
        stoi = row["lip2wav_protocol"]["stoi"]
        assert stoi is None or 0.0 <= stoi <= 1.0
    assert (repo / "data/eval/lip2wav/clips.csv").is_file()
    plots = run(["dvc", "plots", "show", "--json"], repo).stdout
    assert "plots/lip2wav/train.csv" in plots and "val_loss" in plots
    assert list((repo / "data/models/lip2wav").glob("*.pt"))


def test_sync_score_stage_writes_its_own_file(repo: Path, first_repro: str) -> None:
    scores = pd.read_parquet(repo / "data/sync/grid/s1.parquet")
    clips = pd.read_parquet(repo / "data/features/grid/s1.parquet")
    kept = clips[clips["kept"]]
    assert list(scores["clip_id"]) == list(kept["clip_id"])
    assert list(scores["store_index"]) == list(kept["store_index"])
    assert scores["sync_score"].notna().all()
    assert scores["sync_offset_frames"].abs().le(15).all()
    assert clips["sync_score"].isna().all()  # prepare's manifest is only read
    assert changed_stages(repo) == set()
    # The command's default path is the stage's output, derived from params.
    out = run(["lipflow", "sync-score", "data/features/grid/s1.zarr"], repo).stdout
    assert out.strip().endswith("data/sync/grid/s1.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(repo / "data/sync/grid/s1.parquet"), scores)
    run(["dvc", "checkout", "-q", "-f"], repo)  # back to the pipeline's own file


@pytest.mark.parametrize(("module", "must_change"), [
    ("tasks/faces/yuv_crops.py", ("prepare_",)),
    ("tasks/media/yuv.py", ("prepare_",)),
    ("models/dataset.py", ("train@",)),
    ("models/metrics.py", ("evaluate@",)),
])
def test_a_code_edit_marks_the_stages_that_import_it(
        repo: Path, first_repro: str, module: str, must_change: tuple[str, ...]) -> None:
    """Appending a comment to a module changes every stage whose command's import closure
    holds it (tests/test_stage_deps.py), only stages whose deps name it or its folder, and
    no download (their code imports none of these)."""
    built = set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
    layout, clis = Layout.read(repo), {}
    stages = [s for s in load_stages(repo) if s.name in built]  # no empty-foreach stand-ins
    importers = {s.name for s in stages if module in stage_closure(layout, clis, s)}
    covering = {s.name for s in stages if any(covers(d, module) for d in s.deps)}
    must = {s for s in built if s.startswith(must_change)}
    assert must and must <= importers
    path = repo / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# touched by test_dvc_pipeline\n")
        changed = changed_stages(repo)
    finally:
        path.write_bytes(original)
    assert importers <= changed <= covering
    assert not any(s.startswith("download_") for s in changed)
    assert changed_stages(repo) == set()


def test_exp_run_param_change_shows_in_metrics_diff(repo: Path, first_repro: str) -> None:
    out = run(["dvc", "exp", "run", "-S", "train.lip2wav.lr=0.05"], repo).stdout
    assert ran_stages(out) == {"train@lip2wav", "evaluate@lip2wav"}
    params = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)
    assert params["params.yaml"]["train.lip2wav.lr"]["new"] == 0.05
    metrics = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    changed = metrics.get("metrics/lip2wav.json", {})
    assert "mel_l1" in changed and changed["mel_l1"]["new"] != changed["mel_l1"]["old"]
    run(["git", "checkout", "--", "params.yaml", "dvc.lock", "metrics", "plots"], repo)
    run(["dvc", "checkout", "-q"], repo)


def test_feature_param_reruns_prepare_not_download(repo: Path, first_repro: str) -> None:
    edit_params(repo, "preprocess.mouth_height_px", 64)
    diff = run(["dvc", "params", "diff", "--json"], repo).stdout
    changed = json.loads(diff)["params.yaml"]
    assert changed["preprocess.mouth_height_px"]["old"] == 96
    assert changed["preprocess.mouth_height_px"]["new"] == 64
    out = run(["dvc", "repro", "--glob", "*grid@*"], repo).stdout
    assert ran_stages(out) == {"prepare_grid@s1"}
    store = zarr.open_group(repo / "data/features/grid/s1.zarr", mode="r")
    assert store["mouth"].shape == (3, 75, 64, 96)
    commit(repo, "mouth 64")


def test_adding_a_speaker_runs_only_its_stages(repo: Path, first_repro: str) -> None:
    edit_params(repo, "grid.speakers", ["s1", "s16"])
    diff = run(["dvc", "params", "diff"], repo).stdout
    assert "grid.speakers" in diff and "'s16'" in diff
    out = run(["dvc", "repro", "--glob", "*grid@*"], repo).stdout
    assert ran_stages(out) == {"download_grid@s16", "prepare_grid@s16"}
    s16 = pd.read_parquet(repo / "data/raw/grid/manifests/s16.parquet")
    assert list(s16["utterance_id"]) == ["bgal9n"]
    assert s16["alignment_path"].isna().all()
