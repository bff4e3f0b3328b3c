"""DVC remotes: push then pull in a fresh clone is byte-identical; ``refresh`` pushes."""

from __future__ import annotations

import shutil

from lipflow.flows.runners import tree_digest
from tests.support.git_repo import commit_all, dvc, git, make_toy_project, set_param

OUTPUTS = ("data/features/toy/s1.zarr", "models/toy.ckpt")


def test_push_then_pull_in_a_fresh_clone_is_byte_identical(tmp_path):
    origin, remote, clone = tmp_path / "origin", tmp_path / "remote", tmp_path / "clone"
    make_toy_project(origin)
    dvc("remote", "add", "-d", "shared", str(remote), cwd=origin)
    commit_all(origin, "add the shared remote")
    dvc("push", "-q", cwd=origin)
    assert any(p.is_file() for p in remote.rglob("*")), "push wrote nothing to the remote"
    before = {out: tree_digest(origin / out) for out in OUTPUTS}

    git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert not (clone / OUTPUTS[0]).exists()  # data is not in git, only its .lock hashes
    # a clone must not be able to borrow the origin's cache: only the remote may serve it
    shutil.rmtree(origin / ".dvc" / "cache")
    dvc("pull", "-q", cwd=clone)

    after = {out: tree_digest(clone / out) for out in OUTPUTS}
    assert after == before
    assert (clone / OUTPUTS[0] / "zarr.json").is_file()
    assert "up to date" in dvc("status", cwd=clone)  # workspace matches dvc.lock


def test_refresh_flow_repros_and_pushes_to_the_remote(prefect_harness, tmp_path):
    from lipflow.flows.refresh import refresh_flow
    from lipflow.tasks.ops.refresh import download_command, missing_speakers

    repo, remote = tmp_path / "repo", tmp_path / "remote"
    make_toy_project(repo)
    dvc("remote", "add", "-d", "shared", str(remote), cwd=repo)
    set_param(repo, "mouth_height_px", 10)  # makes the stage stale: refresh must re-run it

    result = refresh_flow(root=str(repo))

    assert result["downloaded"] == {} and result["pushed"] is True
    assert "up to date" in dvc("status", cwd=repo)  # repro ran: workspace matches dvc.lock
    assert "in sync" in dvc("status", "--cloud", cwd=repo)  # push ran: remote has it all
    params = {"grid": {"raw_root": "raw", "speakers": ["s1", "s2"], "mirror": "sample"}}
    (repo / "raw" / "manifests").mkdir(parents=True)
    (repo / "raw" / "manifests" / "s1.parquet").write_bytes(b"")
    assert missing_speakers(params, "grid", repo) == ["s2"]
    cmd = download_command(params, "grid", ["s2"], repo)
    assert cmd[-6:] == ["s2", "--root", str(repo / "raw"), "--no-progress", "--mirror", "sample"]
    assert cmd[-8:-6] == ["download", "grid"]
    lip2wav = {"lip2wav": {"raw_root": "l2w", "speakers": ["chem"], "split": "val",
                           "limit_videos": 2}}
    assert missing_speakers(lip2wav, "lip2wav", repo) == ["chem"]
    assert download_command(lip2wav, "lip2wav", ["chem"], repo)[-7:] == [
        "--root", str(repo / "l2w"), "--no-progress", "--split", "val", "--limit", "2"]
