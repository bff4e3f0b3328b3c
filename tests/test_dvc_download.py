"""`dvc repro` runs the download flow on the sample; a speaker-list change shows in
`dvc params diff` and re-runs only the stages it touches."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.project_copy import commit, copy_project, run

pytestmark = pytest.mark.slow


def set_speakers(repo: Path, speakers: list[str]) -> None:
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["grid"]["speakers"] = speakers
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_download_then_speaker_change(tmp_path: Path, project_root: Path) -> None:
    repo = copy_project(project_root, tmp_path / "repo")
    set_speakers(repo, ["s1"])
    commit(repo, "one speaker")

    first = run(["dvc", "repro", "--glob", "download_grid@*"], repo)
    assert ran_stages(first.stdout) == {"download_grid@s1"}
    manifest = pd.read_parquet(repo / "data/raw/grid/manifests/s1.parquet")
    assert sorted(manifest["utterance_id"]) == ["bbaf2n", "bbal6n", "bbbf8p"]
    assert (repo / "data/raw/grid/s1/bbaf2n.mpg").is_file()
    assert (repo / "data/raw/grid/alignments/s1/bbaf2n.align").is_file()
    commit(repo, "downloaded s1")

    again = run(["dvc", "repro", "--glob", "download_grid@*"], repo)
    assert ran_stages(again.stdout) == set(), "nothing changed, nothing may re-run"

    set_speakers(repo, ["s1", "s16"])
    diff = run(["dvc", "params", "diff"], repo).stdout
    assert "grid.speakers" in diff and "'s16'" in diff

    second = run(["dvc", "repro", "--glob", "download_grid@*"], repo)
    assert ran_stages(second.stdout) == {"download_grid@s16"}
    s16 = pd.read_parquet(repo / "data/raw/grid/manifests/s16.parquet")
    assert list(s16["utterance_id"]) == ["bgal9n"]
    assert s16["alignment_path"].isna().all()
