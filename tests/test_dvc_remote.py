"""DVC remotes: ``dvc push`` then, in a fresh clone, ``dvc pull`` restores identical outputs."""

from __future__ import annotations

import shutil

from flows.runners import tree_digest
from tests.support.git_repo import commit_all, dvc, git, make_toy_project

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
