"""lipflow outside its checkout: no params.yaml anywhere, the built-in defaults apply.

Each command runs as the installed ``lipflow`` in a temporary folder outside the
repository, without ``LIPFLOW_ROOT`` or ``LIPFLOW_PARAMS``: what a new user who
``pip install``-ed lipflow and has a folder of videos does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pandas as pd
import yaml

from tests.conftest import PROJECT_ROOT, SAMPLE_GRID

LIPFLOW = Path(sys.executable).with_name("lipflow")


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIPFLOW_ROOT", "LIPFLOW_PARAMS")}
    return subprocess.run([str(LIPFLOW), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _outside(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    assert PROJECT_ROOT not in folder.resolve().parents
    assert not any((p / "params.yaml").exists() for p in (folder, *folder.parents))
    return folder


def test_track_runs_anywhere_with_defaults_and_with_params(tmp_path: Path) -> None:
    here = _outside(tmp_path)
    video = SAMPLE_GRID / "s1" / "bbaf2n.mpg"
    done = run(["track", str(video), "out.mp4", "--crops", "crops"], here)
    assert done.returncode == 0, done.stderr
    assert "75 frames at 25 fps, 1 windows, 1 kept" in done.stdout
    assert (here / "out.mp4").stat().st_size > 0 and len(list((here / "crops").iterdir())) == 75
    assert not (here / ".prefect").exists()  # track runs no flow

    params = here / "mine.yaml"
    params.write_text(yaml.safe_dump({"preprocess": {"mouth_preset": "cnn3d"}}))
    done = run(["track", str(video), "out2.mp4", "--crops", "crops2", "--params", str(params)],
               here)
    assert done.returncode == 0, done.stderr
    crop = cv2.imread(str(here / "crops2" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert crop.shape == (60, 100)


def test_download_and_prepare_local_run_anywhere(tmp_path: Path) -> None:
    here = _outside(tmp_path)
    clips = here / "clips"
    clips.mkdir()
    for name in ("s1/bbaf2n.mpg", "s16/bgal9n.mpg"):
        shutil.copy(SAMPLE_GRID / name, clips / Path(name).name)
    done = run(["download", "local", "clips", "--speaker", "anna", "--language", "en"], here)
    assert done.returncode == 0, done.stderr
    assert (here / "data/raw/local/manifests/anna.parquet").is_file()

    done = run(["prepare", "local", "anna", "--runner", "thread", "--no-progress"], here)
    assert done.returncode == 0, done.stderr
    assert "anna: 2 videos, 2 clips kept, 0 rejected" in done.stdout  # the summary line
    manifest = pd.read_parquet(here / "data/features/local/anna.parquet")
    assert manifest["kept"].all() and (manifest["fps"] == 25.0).all()  # user_corpus.fps
    assert (here / "data/features/local/anna.zarr").is_dir()
